#include "mdsync/store/side_pause.hpp"

#include <pqxx/pqxx>

#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::store {

std::vector<std::string> pause_sides(pqxx::connection_base& control,
                                     const std::vector<std::string>& sides, const std::string& who,
                                     const std::string& note) {
  pqxx::work tx(control);
  tx.exec_params(
      "INSERT INTO mdsync.side_state (side) SELECT unnest($1::text[]) ON CONFLICT (side) DO "
      "NOTHING",
      pg_text_array(sides));
  // A side already paused keeps its first pause time, who and note.
  std::vector<std::string> changed;
  for (const auto& r : tx.exec_params(
           "UPDATE mdsync.side_state SET paused_at = now(), paused_by = $2,"
           " pause_note = nullif($3, '') WHERE side = ANY ($1::text[]) AND paused_at IS NULL"
           " RETURNING side",
           pg_text_array(sides), who, note))
    changed.push_back(r[0].as<std::string>());
  notify_engine(tx, "pause");
  tx.commit();
  return changed;
}

std::vector<std::string> resume_sides(pqxx::connection_base& control,
                                      const std::vector<std::string>& sides) {
  pqxx::work tx(control);
  std::vector<std::string> changed;
  for (const auto& r : tx.exec_params(
           "UPDATE mdsync.side_state SET paused_at = NULL, paused_by = NULL, pause_note = NULL"
           " WHERE side = ANY ($1::text[]) AND paused_at IS NOT NULL RETURNING side",
           pg_text_array(sides)))
    changed.push_back(r[0].as<std::string>());
  // A running service walks the queues from their start and sends what waited.
  notify_engine(tx, "resume");
  tx.commit();
  return changed;
}

}  // namespace mdsync::store
