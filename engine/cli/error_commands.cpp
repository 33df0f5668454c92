#include "error_commands.hpp"

#include <iomanip>
#include <iostream>

#include "control_session.hpp"

namespace mdsync::cli {

using nlohmann::json;

namespace {

std::string shown(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

store::ErrorItemId item_id(const std::string& text, const std::string& command) {
  if (auto id = store::parse_error_item_id(text)) return *id;
  throw UsageError("'" + text + "' is not an error item id (c12: a change kept as an error; " +
                       "w34: a failed write-back)",
                   command);
}

}  // namespace

int cmd_errors_list(const config::Config& config, const store::ErrorFilter& filter, bool as_json) {
  if (filter.side) check_side(config, *filter.side, "errors list");
  if (filter.entity) check_entity(config, *filter.entity, "errors list");
  ControlSession session = open_control(config);
  const json list = store::list_error_items(*session.conn, filter);
  if (as_json) {
    std::cout << list.dump(2) << "\n";
    return 0;
  }
  if (list.empty()) {
    std::cout << "no " << (filter.status == "all" ? "" : filter.status + " ") << "error items\n";
    return 0;
  }
  std::cout << std::left << std::setw(8) << "ID" << std::setw(18) << "KIND" << std::setw(8)
            << "SIDE" << std::setw(12) << "ENTITY" << std::setw(12) << "ROW" << std::setw(11)
            << "STATUS" << std::setw(29) << "AT"
            << "ERROR\n";
  for (const json& i : list)
    std::cout << std::left << std::setw(8) << i["id"].get<std::string>() << std::setw(18)
              << i["kind"].get<std::string>() << std::setw(8) << i["side"].get<std::string>()
              << std::setw(12) << i["entity"].get<std::string>() << std::setw(12)
              << (i["row_key"].is_null() ? std::string("-") : i["row_key"].get<std::string>())
              << std::setw(11) << i["status"].get<std::string>() << std::setw(29) << shown(i["at"])
              << i["error"].get<std::string>() << "\n";
  return 0;
}

int cmd_errors_show(const config::Config& config, const std::string& text, bool as_json) {
  const store::ErrorItemId id = item_id(text, "errors show");
  ControlSession session = open_control(config);
  const json i = store::show_error_item(*session.conn, id);
  if (as_json) {
    std::cout << i.dump(2) << "\n";
    return 0;
  }
  std::cout << i["id"].get<std::string>() << " (" << i["kind"].get<std::string>() << ", "
            << i["status"].get<std::string>() << ")\n"
            << "  row:     " << i["side"].get<std::string>() << " "
            << i["entity"].get<std::string>() << " " << shown(i["row_key"]) << ", record "
            << shown(i["golden_id"]) << "\n"
            << "  change:  " << i["op"].get<std::string>() << " " << shown(i["values"]) << " ("
            << i["source"].get<std::string>() << ")\n"
            << "  error:   " << i["error"].get<std::string>() << "\n"
            << "  at:      " << shown(i["at"]);
  if (!i["attempts"].is_null()) std::cout << " after " << i["attempts"] << " attempt(s)";
  std::cout << "\n";
  if (!i["handled_by"].is_null())
    std::cout << "  handled: " << i["status"].get<std::string>() << " " << shown(i["handled_at"])
              << " by " << i["handled_by"].get<std::string>()
              << (i["note"].is_null() ? std::string() : " (" + i["note"].get<std::string>() + ")")
              << "\n";
  return 0;
}

int cmd_errors_handle(const config::Config& config, const ErrorsRequest& req) {
  const std::string command = req.discard ? "errors discard" : "errors retry";
  std::vector<store::ErrorItemId> ids;
  for (const std::string& t : req.ids) ids.push_back(item_id(t, command));
  ControlSession session = open_control(config);
  store::ErrorAction action;
  action.kind = req.discard ? store::ErrorAction::Kind::kDiscard : store::ErrorAction::Kind::kRetry;
  action.steward = steward_identity(session);
  action.note = req.note.value_or("");
  // All or nothing: a refused id throws store::StewardRefusals, which main() reports.
  for (const std::string& line : store::handle_error_items(*session.conn, config, ids, action))
    std::cout << line << "\n";
  return 0;
}

}  // namespace mdsync::cli
