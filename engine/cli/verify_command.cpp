#include "verify_command.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "control_session.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/verification.hpp"

namespace mdsync::cli {

using nlohmann::json;

namespace {

json value_json(const core::Value& v) {
  return v ? json(*v) : json(nullptr);
}

std::string shown(const core::Value& v) {
  return v ? json(*v).dump(-1, ' ', false, json::error_handler_t::replace) : "NULL";
}

json difference_json(const store::Difference& d) {
  json j = {{"kind", store::to_string(d.kind)},
            {"entity", d.entity},
            {"side", d.side},
            {"row_key", d.row_key},
            {"golden_id", d.golden_id == 0 ? json(nullptr) : json(d.golden_id)}};
  if (d.kind == store::Difference::Kind::kValue) {
    j["field"] = d.field;
    j["side_value"] = value_json(d.side_value);
    j["golden_value"] = value_json(d.golden_value);
    if (!d.unreadable.empty()) j["unreadable"] = d.unreadable;
  }
  if (!d.repair.empty()) {
    j["repair"] = d.repair;
    j["repaired"] = d.repaired;
  }
  return j;
}

// erp customer 42 (golden 7): credit_limit: erp holds "900.00", golden "1000.00"
std::string difference_line(const store::Difference& d) {
  std::string s = d.side + " " + d.entity + " " + d.row_key;
  if (d.golden_id != 0) s += " (golden " + std::to_string(d.golden_id) + ")";
  switch (d.kind) {
    case store::Difference::Kind::kValue:
      s += ": " + d.field + ": " + d.side + " holds " + shown(d.side_value) + ", golden " +
           shown(d.golden_value);
      if (!d.unreadable.empty()) s += " (unreadable: " + d.unreadable + ")";
      break;
    case store::Difference::Kind::kUnlinked:
      s += ": the row takes part, but no record links it";
      break;
    case store::Difference::Kind::kMissing:
      s += ": linked, but " + d.side + " no longer holds the row";
      break;
  }
  if (!d.repair.empty()) s += "\n    repair: " + d.repair;
  return s;
}

}  // namespace

int cmd_verify(const config::Config& config, const VerifyRequest& request) {
  if (request.entity) check_entity(config, *request.entity, "verify");
  ControlSession session = open_control(config);
  // Each difference is confirmed with its record locked (SELECT ... FOR UPDATE), which takes
  // the right to write the record tables, report or repair.
  require_service_role(session, config, "lock golden records: verify runs");
  const core::Ruleset rs = store::load_ruleset(*session.conn, config);
  store::VerifyOptions options;
  options.entity = request.entity;
  options.repair = request.repair;
  options.chunk_rows = request.chunk_rows;
  std::int64_t left = 0;
  bool first = true;
  if (request.json) std::cout << "{\"differences\": [";
  const store::VerifySummary s =
      store::verify_sides(*session.conn, config, rs, options, [&](const store::Difference& d) {
        if (!d.repaired) ++left;
        if (request.json) {
          std::cout << (first ? "\n  " : ",\n  ")
                    << difference_json(d).dump(-1, ' ', false, json::error_handler_t::replace);
        } else {
          std::cout << difference_line(d) << "\n";
        }
        std::cout.flush();
        first = false;
      });
  if (request.json) {
    const json summary = {
        {"rows_checked", s.rows_checked},         {"links_checked", s.links_checked},
        {"differences", s.differences},           {"repaired", s.repaired},
        {"conflicts_opened", s.conflicts_opened}, {"in_flight", s.in_flight}};
    std::cout << (first ? "" : "\n") << "], \"summary\": " << summary.dump() << "}\n";
  } else {
    std::cout << "verify: " << s.rows_checked << " rows and " << s.links_checked
              << " links checked, " << s.differences << " difference"
              << (s.differences == 1 ? "" : "s");
    if (request.repair)
      std::cout << " (" << s.repaired << " repaired, " << s.conflicts_opened
                << " of them as conflicts for a steward)";
    std::cout << ", " << s.in_flight << " in flight (a capture or write-back explains them)\n";
  }
  if (left == 0) return 0;
  std::cerr << "mdsync: verify: " << left << " difference" << (left == 1 ? "" : "s")
            << (request.repair ? " could not be repaired"
                               : " found; `mdsync verify --repair` repairs them")
            << "\n";
  return 1;
}

}  // namespace mdsync::cli
