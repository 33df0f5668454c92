// What a pass did, counted per side and entity, for the service's metrics: each change's
// outcome, each write-back's result, the time each capture batch took and how long after its
// capture a change reached the other sides. Plain counts; the service adds them up.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace mdsync::store {

struct PassTally {
  using Key = std::tuple<std::string, std::string, std::string>;  // side, entity, word
  // Changes by (side, entity, outcome): applied, reverted, quarantined, unchanged, error.
  std::map<Key, std::int64_t> changes;
  // Write-backs by (side, entity, result): applied, superseded, waiting, failed, vetoed,
  // unwritable, cancelled.
  std::map<Key, std::int64_t> writebacks;
  // Write-backs sent in a batch the side could not take (down, or refused the transaction):
  // each is sent again later.
  std::map<std::string, std::int64_t> writeback_retries;
  // Times a side could not be read or written (it backs off, then its circuit opens).
  std::map<std::string, std::int64_t> side_errors;
  std::vector<double> batch_seconds;                 // each capture batch, decided and committed
  std::vector<double> capture_to_writeback_seconds;  // see SyncEngine::take_in_results

  void add_change(const std::string& side, const std::string& entity, const char* outcome) {
    ++changes[Key{side, entity, outcome}];
  }
  void add_writeback(const std::string& side, const std::string& entity, const char* result) {
    ++writebacks[Key{side, entity, result}];
  }
  PassTally& operator+=(const PassTally& o);
};

}  // namespace mdsync::store
