# Writes OUT: a C++ source holding every control-store migration in schema/control, in
# file-name order, so the mdsync binary carries its own schema. Run at build time.
file(GLOB files "${SCHEMA_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME_WE)
  string(REGEX MATCH "^[0-9]+" version "${name}")
  # "0008" would be an invalid octal literal in the generated C++: drop the leading zeros.
  string(REGEX REPLACE "^0+([0-9])" "\\1" version "${version}")
  file(READ "${f}" sql)
  string(APPEND body "    {${version}, \"${name}\", R\"mdsync_sql(${sql})mdsync_sql\"},\n")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from schema/control by engine/store/embed_sql.cmake. Do not edit.
#include \"mdsync/store/control_schema.hpp\"

namespace mdsync::store {

const std::vector<Migration>& control_migrations() {
  static const std::vector<Migration> kMigrations = {
${body}  };
  return kMigrations;
}

}  // namespace mdsync::store
")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
