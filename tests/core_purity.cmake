# Fails when the pure core includes anything that does I/O or belongs to an outer layer:
# the core target links nothing, but header-only libraries would still compile, so the
# include lines themselves are checked.
file(GLOB_RECURSE sources "${CORE_DIR}/*.cpp" "${CORE_DIR}/*.hpp")
set(bad "")
foreach(f IN LISTS sources)
  file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS lines)
    if(line MATCHES "pqxx|boost|asio|spdlog|fmt/|nlohmann|CLI/|<fstream>|<iostream>|<thread>|<chrono>|<filesystem>|<random>|<cstdio>")
      string(APPEND bad "\n  ${f}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "the reconciliation core must stay pure (no I/O, clock, randomness or outer libraries):${bad}")
endif()
message(STATUS "core is pure: ${CORE_DIR}")
