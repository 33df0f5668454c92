// Pausing a side (`mdsync pause`, `mdsync resume`): capture keeps recording and changes from
// the side are still reconciled, but the engine writes nothing to a paused side; its
// write-backs stay queued (in order) until it is resumed. The state lives in side_state, so a
// running service sees it at its next pass, and the command wakes it.
#pragma once

#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}  // namespace pqxx

namespace mdsync::store {

// Pauses `sides` (a side already paused keeps its first pause time, who and note), recorded
// as paused by `who`; returns those that were not paused before.
std::vector<std::string> pause_sides(pqxx::connection_base& control,
                                     const std::vector<std::string>& sides, const std::string& who,
                                     const std::string& note);
// Resumes `sides`; returns those that were paused.
std::vector<std::string> resume_sides(pqxx::connection_base& control,
                                      const std::vector<std::string>& sides);

}  // namespace mdsync::store
