// The mdsync binary: the steward CLI and the service in one. Parses the command line with
// CLI11, loads the config, dispatches, and maps failures to the documented exit codes:
// 0 ok, 1 the request failed (message on stderr), 2 usage error.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "admin_commands.hpp"
#include "control_session.hpp"
#include "error_commands.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/rules/located_json.hpp"
#include "mdsync/service/service.hpp"
#include "mdsync/store/control_schema.hpp"
#include "mdsync/store/database_errors.hpp"
#include "mdsync/store/db_connection.hpp"
#include "pause_commands.hpp"
#include "steward_commands.hpp"
#include "verify_command.hpp"

namespace {

constexpr int kUsage = 2;

std::string default_config_path() {
  if (const char* env = std::getenv("MDSYNC_CONFIG"); env && *env) return env;
  return "mdsync.json";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mdsync;
  CLI::App app{
      "mdsync keeps master data (customers, products, ...) consistent between systems\n"
      "of record, enforcing a per-field ownership policy that data stewards edit.",
      "mdsync"};
  // Global options may follow the command (`mdsync run --log-level debug`).
  app.fallthrough();
  // The control schema this binary carries: `init` brings a store up to it (README "Upgrade").
  app.set_version_flag("--version", std::string("mdsync ") + MDSYNC_VERSION + " (control schema " +
                                        std::to_string(store::control_migrations().back().version) +
                                        ")");
  std::string config_path;
  std::string log_level;
  app.add_option("--config", config_path,
                 "Config file (default: $MDSYNC_CONFIG, else ./mdsync.json)");
  app.add_option("--log-level", log_level,
                 "debug, info, warn or error (default: info for run, warn otherwise)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  std::string steward_as;
  app.add_option("--as", steward_as,
                 "Your name in the audit trail, next to the database user the control store "
                 "knows you as (default: $MDSYNC_STEWARD)");

  auto* init = app.add_subcommand("init",
                                  "Create or upgrade the control schema, check every side's "
                                  "mapping, install capture; idempotent");
  cli::InitOptions init_options;
  auto* print_grants =
      init->add_flag("--print-grants", init_options.print_grants,
                     "Print the SQL a DBA runs (as a superuser, per side) so that init needs no "
                     "CREATEROLE; connects to nothing");
  init->add_option("--adopt-side", init_options.adopt_side,
                   "Move SIDE, stamped by another control store, to this one (new capture "
                   "epoch, its write-back idempotency keys cleared)")
      ->excludes(print_grants);

  auto* rules = app.add_subcommand("rules", "Check, apply, show or diff the ownership rules");
  auto* rules_check = rules->add_subcommand(
      "check", "Check the rules folder against the config; no database needed");
  auto* rules_apply =
      rules->add_subcommand("apply", "Check the rules folder and save it as a new ruleset version");
  auto* rules_show = rules->add_subcommand("show", "Print the ruleset in force");
  std::optional<std::string> show_entity;
  rules_show->add_option("--entity", show_entity, "Only this entity");
  auto* rules_diff = rules->add_subcommand("diff", "Show what `rules apply` would change");

  auto* run = app.add_subcommand("run", "Run the sync service until SIGTERM/SIGINT");
  service::RunOptions run_options;
  run->add_flag("--once", run_options.once,
                "Drain everything pending, then exit (1 if something could not be drained)");
  run->add_option("--seed", run_options.seed, "Seed for retry jitter (default: random, logged)");

  auto* sync = app.add_subcommand(
      "sync", "Bootstrap: link, create or flag the rows the sides already hold (--initial)");
  bool sync_initial = false, sync_dry_run = false, sync_accept = false, sync_json = false;
  sync->add_flag("--initial", sync_initial,
                 "Read every row each side holds, link rows by their match keys, decide every "
                 "field by its owner's row, then write back (one transaction)");
  sync->add_flag("--dry-run", sync_dry_run,
                 "Decide everything, print every write it would make (side, field, old -> new), "
                 "then change nothing");
  sync->add_flag("--accept-overwrites", sync_accept,
                 "Queue the writes even when they overwrite more of a side's values than "
                 "initial_sync.max_overwrite_share allows");
  sync->add_flag("--json", sync_json, "Machine-readable output (every write listed)");
  sync->add_option("--seed", run_options.seed, "Seed for retry jitter (default: random)");

  auto* status =
      app.add_subcommand("status", "Lag, backlog, open conflicts and last error, per side");
  bool status_json = false;
  std::vector<std::string> status_checks;
  status->add_flag("--json", status_json, "Machine-readable output");
  status->add_option("--check", status_checks,
                     "Exit 1 past a threshold: lag=SECONDS, backlog=N, conflicts=N, failed=N, "
                     "errors=N (failed and errors default to 0)");

  auto* conflicts = app.add_subcommand("conflicts", "Review and resolve the conflict queue");
  auto* c_list = conflicts->add_subcommand("list", "List conflicts (open ones by default)");
  store::ConflictFilter filter;
  bool list_json = false;
  c_list->add_option("--entity", filter.entity, "Only this entity");
  c_list->add_option("--field", filter.field, "Only conflicts on this field (or its group)");
  c_list->add_option("--kind", filter.kind, "Only this kind")
      ->check(CLI::IsMember({"concurrent_edit", "foreign_write", "invalid_value",
                             "unauthorized_create", "foreign_delete", "possible_duplicate",
                             "write_refused", "uncaptured_value"}));
  c_list->add_option("--status", filter.status, "open (default), resolved, dismissed or all")
      ->check(CLI::IsMember({"open", "resolved", "dismissed", "all"}));
  c_list->add_flag("--json", list_json, "Machine-readable output");

  auto* c_show = conflicts->add_subcommand("show", "Show one conflict with its competing values");
  std::int64_t show_id = 0;
  bool show_json = false;
  c_show->add_option("ID", show_id, "Conflict id")->required();
  c_show->add_flag("--json", show_json, "Machine-readable output");

  auto* c_resolve = conflicts->add_subcommand(
      "resolve", "Resolve conflicts by taking a side's value or giving one");
  cli::ResolveRequest resolve;
  c_resolve->add_option("ID", resolve.ids, "Conflict ids");
  auto* take = c_resolve->add_option("--take", resolve.take_side, "Take the value this side holds");
  auto* value = c_resolve->add_option("--value", resolve.value_json,
                                      "Set this JSON value (or {field: value} for a group)");
  take->excludes(value);
  c_resolve->add_option("--note", resolve.note, "A note kept with the resolution");
  c_resolve
      ->add_option("--wait", resolve.wait_seconds,
                   "A steward without write access: seconds to wait for the engine to "
                   "apply the decision (default 30)")
      ->check(CLI::Range(0, 3600));
  auto* all =
      c_resolve->add_flag("--all", resolve.all, "Every open conflict of --entity (and --field)");
  auto* r_entity = c_resolve->add_option("--entity", resolve.entity, "With --all: the entity");
  c_resolve->add_option("--field", resolve.field, "With --all: only this field");
  auto* link = c_resolve->add_option(
      "--link", resolve.link,
      "possible_duplicate, unauthorized_create: the row is the record SIDE:ROWKEY (or golden "
      "id) stands for; link it");
  auto* create = c_resolve->add_flag(
      "--create", resolve.create,
      "possible_duplicate, unauthorized_create: the row is a new record; create it");
  all->needs(r_entity);
  for (auto* other : {take, value, static_cast<CLI::Option*>(all), create}) link->excludes(other);
  for (auto* other : {take, value, static_cast<CLI::Option*>(all)}) create->excludes(other);

  auto* c_dismiss =
      conflicts->add_subcommand("dismiss", "Close conflicts keeping the golden value");
  cli::ResolveRequest dismiss;
  dismiss.dismiss = true;
  c_dismiss->add_option("ID", dismiss.ids, "Conflict ids")->required();
  c_dismiss->add_option("--note", dismiss.note, "A note kept with the resolution");
  c_dismiss
      ->add_option("--wait", dismiss.wait_seconds,
                   "A steward without write access: seconds to wait for the engine to "
                   "apply the decision (default 30)")
      ->check(CLI::Range(0, 3600));

  auto* errors = app.add_subcommand(
      "errors", "Changes the engine could not reconcile and write-backs the sides refused");
  auto* e_list = errors->add_subcommand("list", "List error items (open ones by default)");
  store::ErrorFilter error_filter;
  bool e_list_json = false;
  e_list->add_option("--side", error_filter.side, "Only this side");
  e_list->add_option("--entity", error_filter.entity, "Only this entity");
  e_list->add_option("--status", error_filter.status, "open (default), retried, discarded or all")
      ->check(CLI::IsMember({"open", "retried", "discarded", "all"}));
  e_list->add_flag("--json", e_list_json, "Machine-readable output");
  auto* e_show = errors->add_subcommand("show", "Show one error item");
  std::string e_show_id;
  bool e_show_json = false;
  e_show
      ->add_option("ID", e_show_id, "c12 (a change kept as an error) or w34 (a failed write-back)")
      ->required();
  e_show->add_flag("--json", e_show_json, "Machine-readable output");
  auto* e_retry = errors->add_subcommand(
      "retry",
      "Retry items, all or none: a change is re-captured from its row as it is now; a "
      "write-back is planned again");
  cli::ErrorsRequest error_retry;
  e_retry->add_option("ID", error_retry.ids, "Item ids (c12, w34)")->required();
  e_retry->add_option("--note", error_retry.note, "A note kept in the audit trail");
  auto* e_discard =
      errors->add_subcommand("discard", "Close items without doing anything, all or none");
  cli::ErrorsRequest error_discard;
  error_discard.discard = true;
  e_discard->add_option("ID", error_discard.ids, "Item ids (c12, w34)")->required();
  e_discard->add_option("--note", error_discard.note, "A note kept in the audit trail");

  auto* records = app.add_subcommand("records", "Look at golden records");
  auto* r_show = records->add_subcommand(
      "show", "Show a golden record, its links to every side and its conflicts");
  std::string rec_entity, rec_id;
  bool rec_history = false, rec_json = false;
  r_show->add_option("ENTITY", rec_entity, "Entity name")->required();
  r_show->add_option("ID", rec_id, "Golden id, or SIDE:ROWKEY")->required();
  r_show->add_flag("--history", rec_history, "Include the record's audit trail");
  r_show->add_flag("--json", rec_json, "Machine-readable output");

  auto* audit = app.add_subcommand("audit", "The audit trail of golden changes and decisions");
  store::AuditFilter audit_filter;
  bool audit_json = false;
  audit->add_option("--entity", audit_filter.entity, "Only this entity");
  audit->add_option("--id", audit_filter.golden_id, "Only this golden id");
  audit->add_option("--since", audit_filter.since, "Only rows at or after this time (ISO 8601)");
  audit->add_flag("--json", audit_json, "Machine-readable output");
  auto* audit_verify = audit->add_subcommand(
      "verify", "Check the audit chain: no row changed, removed or added past it; print its head");
  bool verify_json = false;
  audit_verify->add_flag("--json", verify_json, "Machine-readable output");

  auto* verify = app.add_subcommand(
      "verify",
      "Compare every side with golden through the mappings: values, rows with no link, links "
      "with no row; --repair queues write-backs of golden, opens conflicts where the side's value "
      "should be heard, and captures unlinked rows again");
  cli::VerifyRequest verify_request;
  verify->add_option("--entity", verify_request.entity, "Only this entity");
  verify->add_flag("--repair", verify_request.repair, "Repair what differs (audited as repair)");
  verify->add_flag("--json", verify_request.json, "Machine-readable output");
  verify
      ->add_option("--chunk-rows", verify_request.chunk_rows,
                   "Rows read, and links looked for, per step (default 1000)")
      ->check(CLI::Range(1, 100000));

  auto* pause = app.add_subcommand(
      "pause", "Write nothing to these sides (every side if none is named); capture goes on");
  cli::PauseRequest pause_request;
  pause->add_option("SIDE", pause_request.sides, "Side names");
  pause->add_option("--note", pause_request.note, "Why, shown by status");
  auto* resume_cmd =
      app.add_subcommand("resume", "Write to paused sides again (every side if none is named)");
  cli::PauseRequest resume_request;
  resume_request.resume = true;
  resume_cmd->add_option("SIDE", resume_request.sides, "Side names");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "mdsync: " << e.what() << " (see 'mdsync --help')\n";
    return kUsage;
  }

  // A command group without its command is a usage error with the choices named.
  if (app.get_subcommands().empty()) {
    std::cerr << "mdsync: a command is required: init, rules, sync, run, status, conflicts, "
                 "errors, records, audit, verify, pause or resume (see 'mdsync --help')\n";
    return kUsage;
  }
  for (const auto& [group, choices] :
       {std::pair{rules, "check, apply, show or diff"},
        std::pair{conflicts, "list, show, resolve or dismiss"},
        std::pair{errors, "list, show, retry or discard"}, std::pair{records, "show"}}) {
    if (*group && group->get_subcommands().empty()) {
      std::cerr << "mdsync: " << group->get_name() << " needs a command: " << choices
                << " (see 'mdsync " << group->get_name() << " --help')\n";
      return kUsage;
    }
  }

  if (*audit_verify && (audit_filter.entity || audit_filter.golden_id || audit_filter.since)) {
    std::cerr << "mdsync: audit verify checks the whole chain and takes no filter (see 'mdsync "
                 "audit verify --help')\n";
    return kUsage;
  }
  if (*sync && !sync_initial) {
    std::cerr << "mdsync: sync needs --initial (see 'mdsync sync --help')\n";
    return kUsage;
  }
  if (*c_resolve) {
    if (resolve.link || resolve.create) {
      if (resolve.ids.size() != 1) {
        std::cerr << "mdsync: --link and --create resolve one conflict: give one id (see "
                     "'mdsync conflicts resolve --help')\n";
        return kUsage;
      }
    } else if (!resolve.take_side && !resolve.value_json) {
      std::cerr << "mdsync: conflicts resolve needs --take SIDE or --value JSON (a "
                   "possible_duplicate: --link SIDE:ROWKEY or --create) (see 'mdsync conflicts "
                   "resolve --help')\n";
      return kUsage;
    } else if (resolve.all == !resolve.ids.empty()) {
      std::cerr << "mdsync: give conflict ids or --all --entity E, not both or neither (see "
                   "'mdsync conflicts resolve --help')\n";
      return kUsage;
    }
  }

  log::init(log::level_from_string(log_level.empty() ? (*run ? "info" : "warn") : log_level));
  if (config_path.empty()) config_path = default_config_path();
  if (steward_as.empty())
    if (const char* env = std::getenv("MDSYNC_STEWARD"); env && *env) steward_as = env;
  cli::set_display_name(steward_as);
  // Which database a PostgreSQL error that reaches main() came from: the control store, but
  // for `sync`, whose side errors are not told apart from the control store's.
  std::string database = "control store";
  try {
    const config::Config config = config::load_config(config_path);
    if (*init) return cli::cmd_init(config, init_options);
    if (*rules_check) return cli::cmd_rules_check(config);
    if (*rules_apply) return cli::cmd_rules_apply(config);
    if (*rules_show) return cli::cmd_rules_show(config, show_entity);
    if (*rules_diff) return cli::cmd_rules_diff(config);
    if (*run) {
      store::set_application_name(store::kServiceApplicationName);
      cli::open_control(config);  // says to run `init` when the schema is missing
      return service::run(config, run_options);
    }
    if (*sync) {
      store::set_application_name("mdsync sync");
      cli::open_control(config);
      database = "a database (the control store or a side)";
      store::InitialSyncOptions options;
      options.dry_run = sync_dry_run;
      options.accept_overwrites = sync_accept;
      options.seed = run_options.seed;
      return cli::cmd_sync_initial(config, options, sync_json);
    }
    if (*status) return cli::cmd_status(config, status_json, status_checks);
    if (*e_list) return cli::cmd_errors_list(config, error_filter, e_list_json);
    if (*e_show) return cli::cmd_errors_show(config, e_show_id, e_show_json);
    if (*e_retry) return cli::cmd_errors_handle(config, error_retry);
    if (*e_discard) return cli::cmd_errors_handle(config, error_discard);
    if (*c_list) return cli::cmd_conflicts_list(config, filter, list_json);
    if (*c_show) return cli::cmd_conflicts_show(config, show_id, show_json);
    if (*c_resolve) return cli::cmd_conflicts_resolve(config, resolve);
    if (*c_dismiss) return cli::cmd_conflicts_resolve(config, dismiss);
    if (*r_show) return cli::cmd_records_show(config, rec_entity, rec_id, rec_history, rec_json);
    if (*verify) return cli::cmd_verify(config, verify_request);
    if (*pause) return cli::cmd_pause(config, pause_request);
    if (*resume_cmd) return cli::cmd_pause(config, resume_request);
    if (*audit_verify) return cli::cmd_audit_verify(config, audit_json || verify_json);
    if (*audit) return cli::cmd_audit(config, audit_filter, audit_json);
  } catch (const cli::UsageError& e) {
    std::cerr << "mdsync: " << e.what() << "\n";
    return kUsage;
  } catch (const rules::CheckError& e) {
    for (const auto& d : e.diagnostics()) std::cerr << d.to_string() << "\n";
    return 1;
  } catch (const store::StewardRefusals& e) {
    for (const std::string& p : e.problems()) std::cerr << "mdsync: " << p << "\n";
    std::cerr << "mdsync: nothing was changed\n";
    return 1;
  } catch (const std::exception& e) {
    // The one place a PostgreSQL error becomes a steward's message (database, object, fix).
    std::cerr << "mdsync: " << store::steward_message(e, database, cli::control_role()) << "\n";
    return 1;
  }
  std::cerr << "mdsync: nothing to do (see 'mdsync --help')\n";
  return kUsage;
}
