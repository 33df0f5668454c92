#include "fault_harness.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <pqxx/pqxx>
#include <sstream>

#include "mdsync/core/value.hpp"

namespace mdsync::e2e::fault {

using nlohmann::json;

namespace {

std::atomic<int> g_run_counter{0};

using Row = std::vector<std::optional<std::string>>;

std::vector<Row> query(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  std::vector<Row> out;
  for (const auto& row : tx.exec(sql)) {
    Row r;
    for (pqxx::row::size_type i = 0; i < row.size(); ++i)
      r.push_back(row[i].is_null() ? std::nullopt
                                   : std::optional<std::string>(row[i].as<std::string>()));
    out.push_back(std::move(r));
  }
  return out;
}

// Child side of fork: environment, output files, exec. Never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const Env& env,
                             const std::string& out_path, const std::string& err_path,
                             bool chdir_root) {
  ::unsetenv("MDSYNC_CRASH_AT");
  ::unsetenv("MDSYNC_CRASH_AFTER");
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  const int in = ::open("/dev/null", O_RDONLY);
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err =
      err_path == out_path ? out : ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0 || err < 0) ::_exit(127);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  if (chdir_root && ::chdir("/") != 0) ::_exit(127);
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_status(status);
}

std::string env_required(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    throw std::runtime_error(std::string(name) + " is not set: run the tests through tools/test");
  return v;
}

std::string show(const std::optional<std::string>& v) {
  return v ? "\"" + *v + "\"" : "NULL";
}

}  // namespace

RunResult run(const Scenario& s, const std::vector<std::string>& args, const Env& env,
              int timeout_s) {
  const std::string base = s.dir() + "/fault-run" + std::to_string(++g_run_counter);
  std::vector<std::string> argv = {MDSYNC_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Env full = env;
  full["MDSYNC_CONFIG"] = s.config_path();
  full["MDSYNC_STEWARD"] = "e2e";
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, full, base + ".out", base + ".err", false);
  RunResult r;
  r.exit_code = wait_exit(pid, timeout_s);
  if (r.exit_code == -1) {
    ::kill(pid, SIGKILL);
    wait_for(pid);
  }
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  if (r.exit_code == -1)
    r.err += "\n[fault harness] killed: still running after " + std::to_string(timeout_s) + " s\n";
  return r;
}

std::string run_ok(const Scenario& s, const std::vector<std::string>& args) {
  const RunResult r = run(s, args);
  std::string joined;
  for (const auto& a : args) joined += " " + a;
  EXPECT_EQ(r.exit_code, 0) << "mdsync" << joined << "\nstdout:\n"
                            << r.out.substr(0, 4000) << "\nstderr:\n"
                            << r.err.substr(0, 8000);
  return r.out;
}

RunResult run_crashing(const Scenario& s, const std::string& point, int after) {
  return run(s, {"run", "--once"},
             {{"MDSYNC_CRASH_AT", point}, {"MDSYNC_CRASH_AFTER", std::to_string(after)}});
}

std::vector<json> events(const std::string& log_text, const std::string& event) {
  std::vector<json> out;
  std::istringstream in(log_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (event.empty() || j.value("event", "") == event) out.push_back(std::move(j));
  }
  return out;
}

std::string sql1(const std::string& dsn, const std::string& sql) {
  const auto rows = query(dsn, sql);
  if (rows.empty() || rows[0].empty()) return "<none>";
  return rows[0][0] ? *rows[0][0] : "<null>";
}

std::vector<std::string> sql_rows(const std::string& dsn, const std::string& sql) {
  std::vector<std::string> out;
  for (const Row& r : query(dsn, sql)) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) line += (i ? "|" : "") + r[i].value_or("<null>");
    out.push_back(line);
  }
  return out;
}

void sql_exec(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

void sql_exec_params(const std::string& dsn, const std::string& sql,
                     const std::vector<std::optional<std::string>>& params) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
}

std::string lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------
// Service

Service::Service(const Scenario& s, const std::string& name, const Env& env,
                 const std::vector<std::string>& extra_args)
    : log_path_(s.dir() + "/" + name + ".log") {
  std::vector<std::string> argv = {MDSYNC_BINARY, "run"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  Env full = env;
  full["MDSYNC_CONFIG"] = s.config_path();
  pid_ = ::fork();
  if (pid_ == 0) exec_child(argv, full, log_path_, log_path_, false);
}

Service::~Service() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_);
  }
}

bool Service::running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    exit_code_ = decode_status(status);
    return false;
  }
  return true;
}

int Service::stop(int seconds) {
  if (!running()) return exit_code_;
  ::kill(pid_, SIGTERM);
  const int code = wait_exit(pid_, seconds);
  if (code == -1) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_);
  }
  reaped_ = true;
  exit_code_ = code;
  return code;
}

std::string Service::log() const {
  return read_file(log_path_);
}

// ---------------------------------------------------------------------------------------
// PgCluster

PgCluster::PgCluster(const std::string& name) {
  bin_ = env_required("MDSYNC_TEST_PGBIN");
  if (const char* r = std::getenv("MDSYNC_TEST_RUN_AS")) run_as_ = r;
  std::string templ = "/tmp/mdsync-" + name.substr(0, 12) + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  base_ = templ;
  if (!run_as_.empty()) {
    const passwd* pw = ::getpwnam(run_as_.c_str());
    if (pw == nullptr) throw std::runtime_error("no account " + run_as_);
    if (::chown(base_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw std::runtime_error("chown " + base_ + " failed");
  }
  ::chmod(base_.c_str(), 0700);
  data_ = base_ + "/data";
  static std::atomic<int> counter{0};
  port_ = 20000 + static_cast<int>((::getpid() * 13 + ++counter * 101) % 30000);
  std::cout << "[cluster " << name << "] " << base_ << " port " << port_ << "\n";
  std::vector<std::string> argv;
  if (!run_as_.empty()) argv = {"/usr/sbin/runuser", "-u", run_as_, "--"};
  for (const std::string& a :
       {bin_ + "/initdb", std::string("-D"), data_, std::string("-U"), std::string("postgres"),
        std::string("--auth=trust"), std::string("--encoding=UTF8"), std::string("--locale=C"),
        std::string("--no-sync")})
    argv.push_back(a);
  const std::string log =
      "/tmp/" + std::filesystem::path(base_).filename().string() + "-initdb.log";
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, {}, log, log, true);
  if (wait_for(pid) != 0) {
    const std::string text = read_file(log);
    std::filesystem::remove(log);
    throw std::runtime_error("initdb failed in " + data_ + ":\n" + text);
  }
  std::filesystem::remove(log);
  start();
}

PgCluster::~PgCluster() {
  try {
    if (up_) pg_ctl({"stop", "-m", "immediate", "-w", "-t", "60"}, false);
  } catch (const std::exception& e) {
    std::cerr << "cluster stop: " << e.what() << "\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(base_, ec);
}

void PgCluster::pg_ctl(const std::vector<std::string>& args, bool must_succeed) {
  std::vector<std::string> argv;
  if (!run_as_.empty()) argv = {"/usr/sbin/runuser", "-u", run_as_, "--"};
  argv.push_back(bin_ + "/pg_ctl");
  argv.push_back("-D");
  argv.push_back(data_);
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = base_ + "/pg_ctl.out";
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, {}, out, out, true);
  const int code = wait_for(pid);
  if (code != 0 && must_succeed)
    throw std::runtime_error("pg_ctl failed (" + std::to_string(code) + "): " + read_file(out) +
                             "\n" + read_file(base_ + "/server.log"));
}

void PgCluster::start() {
  pg_ctl({"start", "-w", "-t", "60", "-l", base_ + "/server.log", "-o",
          "-c listen_addresses='' -k " + base_ + " -p " + std::to_string(port_) +
              " -c fsync=off -c synchronous_commit=off -c max_connections=60"},
         true);
  up_ = true;
}

void PgCluster::stop() {
  pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"}, true);
  up_ = false;
}

std::string PgCluster::dsn(const std::string& db) const {
  return "host='" + base_ + "' port=" + std::to_string(port_) + " user=postgres dbname=" + db;
}

void PgCluster::create_database(const std::string& db, const std::string& setup_sql) {
  {
    pqxx::connection admin(dsn("postgres"));
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + tx.quote_name(db));
  }
  if (!setup_sql.empty()) sql_exec(dsn(db), setup_sql);
}

// ---------------------------------------------------------------------------------------
// Convergence and snapshots

Dbs dbs_of(const Scenario& s) {
  const json config = json::parse(read_file(s.config_path()));
  return Dbs{config["sides"]["erp"]["dsn"].get<std::string>(),
             config["sides"]["crm"]["dsn"].get<std::string>(),
             config["control"].get<std::string>()};
}

namespace {

struct Field {
  const char* name;
  core::FieldType type;
  const char* erp;
  const char* crm;
  bool address;
};
const Field kFields[] = {
    {"name", core::FieldType::kText, "cust_name", "\"accountName\"", false},
    {"phone", core::FieldType::kText, "phone_no", "phone", false},
    {"email", core::FieldType::kText, "email_addr", "email", false},
    {"credit_limit", core::FieldType::kNumeric, "credit_lim", "credit_limit", false},
    {"segment", core::FieldType::kText, "segment_code", "segment", false},
    {"street", core::FieldType::kText, "street", "billing_street", true},
    {"city", core::FieldType::kText, "city", "billing_city", true},
    {"zip", core::FieldType::kText, "zip", "billing_zip", true},
    {"country", core::FieldType::kText, "country", "billing_country", true},
    {"active", core::FieldType::kBoolean, "is_active", "active", false},
};

const Field* field_named(const std::string& name) {
  for (const Field& f : kFields)
    if (name == f.name) return &f;
  return nullptr;
}

// key -> field -> value for every row of a side.
std::map<std::string, core::FieldValues> side_rows(const std::string& dsn, char side) {
  std::string sql = "SELECT " + std::string(side == 'e' ? "account_num" : "id") + "::text";
  for (const Field& f : kFields)
    sql += std::string(", ") + (side == 'e' ? f.erp : f.crm) + "::text";
  sql += side == 'e' ? " FROM erp.customers" : " FROM crm.accounts";
  std::map<std::string, core::FieldValues> out;
  for (const Row& r : query(dsn, sql)) {
    core::FieldValues& v = out[*r[0]];
    std::size_t i = 1;
    for (const Field& f : kFields) {
      const core::Value raw = r[i++];
      v[f.name] = core::canonicalize(f.type, raw).value_or(raw);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> divergences(const Dbs& d) {
  std::vector<std::string> out;
  const auto erp = side_rows(d.erp, 'e');
  const auto crm = side_rows(d.crm, 'c');
  for (const Row& r : query(d.control,
                            "SELECT g.id::text, g.\"values\"::text, x.side, x.row_key,"
                            " coalesce((SELECT jsonb_agg(c.unit) FROM mdsync.conflict c"
                            "  WHERE c.golden_id = g.id AND c.status = 'open'), '[]')::text"
                            " FROM mdsync.golden g JOIN mdsync.crosswalk x ON x.golden_id = g.id"
                            " ORDER BY g.id, x.side")) {
    const std::string id = *r[0], side = *r[2], key = *r[3];
    const json golden = json::parse(*r[1]);
    const json held = json::parse(*r[4]);
    const auto& rows = side == "erp" ? erp : crm;
    const auto row = rows.find(key);
    if (row == rows.end()) {
      out.push_back("golden " + id + ": " + side + " row " + key + " is missing");
      continue;
    }
    for (const Field& f : kFields) {
      bool is_held = false;
      for (const auto& u : held)
        is_held = is_held || u == f.name || (f.address && u == "address") || u == "*record*";
      if (is_held) continue;
      const core::Value g = !golden.contains(f.name) || golden[f.name].is_null()
                                ? core::Value{}
                                : core::Value{golden[f.name].get<std::string>()};
      const core::Value v = row->second.at(f.name);
      if (!core::values_equal(f.type, core::Compare::kExact,
                              core::canonicalize(f.type, g).value_or(g), v))
        out.push_back("golden " + id + "." + f.name + " = " + show(g) + " but " + side + " " + key +
                      " holds " + show(v));
    }
  }
  return out;
}

Snapshot snapshot(const Dbs& d) {
  // Reasons may name a conflict by id; ids come from sequences, which a rolled-back batch
  // advances too, so they are not content.
  const std::string kNoIds = "regexp_replace(reason, 'conflict [0-9]+', 'conflict #', 'g')";
  Snapshot s;
  s.erp_rows = sql_rows(d.erp,
                        "SELECT (to_jsonb(c) - 'account_num')::text FROM erp.customers c"
                        " ORDER BY 1");
  s.crm_rows = sql_rows(d.crm, "SELECT (to_jsonb(a) - 'id')::text FROM crm.accounts a ORDER BY 1");
  s.golden = sql_rows(d.control,
                      "SELECT entity || ' deleted=' || deleted || ' ' || \"values\"::text"
                      " FROM mdsync.golden ORDER BY 1");
  s.audit = sql_rows(d.control,
                     "SELECT concat_ws(' ', source, unit, decision, old_value::text,"
                     " new_value::text, proposed::text, rule, " +
                         kNoIds + ") FROM mdsync.audit ORDER BY 1");
  s.conflicts = sql_rows(d.control,
                         "SELECT concat_ws(' ', source, side, unit, kind, status, \"values\"::text,"
                         " attached::text, " +
                             kNoIds + ") FROM mdsync.conflict ORDER BY 1");
  // Writes that took effect (or failed, or still wait). Superseded attempts are not
  // content: after a crash that left reconciled capture rows on a side, a write to such a
  // row is superseded and planned again once they are gone, with the same final effect.
  s.outbox = sql_rows(d.control,
                      "SELECT side || ' ' || kind || ' ' || status || ' x' || count(*)"
                      " FROM mdsync.outbox WHERE status <> 'superseded'"
                      " GROUP BY side, kind, status ORDER BY 1");
  s.capture_errors = sql_rows(d.control,
                              "SELECT concat_ws(' ', side, seq, entity, op, \"values\"::text,"
                              " error) FROM mdsync.capture_error ORDER BY 1");
  return s;
}

namespace {

// Multiset difference, at most `limit` lines each way.
void diff_lists(const char* what, const std::vector<std::string>& a,
                const std::vector<std::string>& b, std::string& out) {
  if (a == b) return;
  std::vector<std::string> only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
  out += std::string(what) + ": expected " + std::to_string(a.size()) + " rows, got " +
         std::to_string(b.size()) + "\n";
  const std::size_t limit = 12;
  for (std::size_t i = 0; i < only_a.size() && i < limit; ++i)
    out += "  - only in the crash-free run: " + only_a[i].substr(0, 400) + "\n";
  for (std::size_t i = 0; i < only_b.size() && i < limit; ++i)
    out += "  + only in this run:           " + only_b[i].substr(0, 400) + "\n";
}

}  // namespace

std::string compare(const Snapshot& e, const Snapshot& a) {
  std::string out;
  diff_lists("erp rows", e.erp_rows, a.erp_rows, out);
  diff_lists("crm rows", e.crm_rows, a.crm_rows, out);
  diff_lists("golden records", e.golden, a.golden, out);
  diff_lists("audit rows", e.audit, a.audit, out);
  diff_lists("conflicts", e.conflicts, a.conflicts, out);
  diff_lists("outbox outcomes", e.outbox, a.outbox, out);
  diff_lists("capture errors", e.capture_errors, a.capture_errors, out);
  return out;
}

std::vector<std::string> exactly_once_problems(const Dbs& d) {
  std::vector<std::string> out;
  for (const std::string& dup :
       sql_rows(d.control,
                "SELECT source || ' ' || unit || ' x' || count(*) FROM mdsync.audit"
                // A captured change ("crm#42") is decided once; a steward's resolutions and a
                // delete guard's vetoes ("crm:delete_guard") are events of their own.
                " WHERE source ~ '^[a-z0-9_]+#[0-9]+$' GROUP BY source, unit HAVING count(*) > 1"
                " ORDER BY 1"))
    out.push_back("audit row repeated for one change: " + dup);
  for (const auto& [side, dsn] : {std::pair<std::string, std::string>{"erp", d.erp},
                                  std::pair<std::string, std::string>{"crm", d.crm}}) {
    // Withdrawn writes are recorded as cancelled on the side: never applied, never done.
    const auto applied =
        sql_rows(dsn, "SELECT outbox_id FROM mdsync.applied WHERE NOT cancelled ORDER BY 1");
    const auto done =
        sql_rows(d.control, "SELECT id FROM mdsync.outbox WHERE status = 'done' AND side = '" +
                                side + "' ORDER BY 1");
    if (applied != done)
      out.push_back(side + ": " + std::to_string(applied.size()) +
                    " writes recorded as applied on the side, " + std::to_string(done.size()) +
                    " done in the outbox");
    const std::string backlog = sql1(dsn, "SELECT count(*) FROM mdsync.capture");
    if (backlog != "0") out.push_back(side + ": " + backlog + " capture rows left");
  }
  const std::string pending = sql1(
      d.control, "SELECT count(*) FROM mdsync.outbox WHERE status IN ('pending', 'cancelling')");
  if (pending != "0") out.push_back(pending + " write-backs still pending");
  return out;
}

std::string error_of(const std::string& dsn, const std::string& sql) {
  try {
    sql_exec(dsn, sql);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string q(const std::string& name) {
  return "\"" + name + "\"";
}

std::uint32_t test_seed() {
  std::uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("MDSYNC_FAULT_SEED")) seed = std::strtoul(s, nullptr, 10);
  std::cout << "[seed] MDSYNC_FAULT_SEED=" << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

// ---------------------------------------------------------------------------------------
// Workload

std::string Workload::pick_text(const char* prefix) {
  static const char* const kOdd[] = {"O'Brien",     "back\\slash",      "\"quoted\"",
                                     "caf\xC3\xA9", "\xF0\x9F\x8E\x89", "'; DROP TABLE x; --"};
  std::string s = std::string(prefix) + " " + std::to_string(rng_() % 100000);
  if (rng_() % 8 == 0) s += " " + std::string(kOdd[rng_() % 6]);
  return s;
}

std::vector<Op> Workload::phase(int n, double insert_share, int deletes) {
  static const char* const kSegments[] = {"smb", "enterprise", "public"};
  static const char* const kCities[] = {"Ghent", "Bruges", "Lyon", "Porto", "Oslo"};
  std::vector<Op> ops;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto money = [&] {
    return std::to_string(rng_() % 50000) + "." + std::to_string(10 + rng_() % 90);
  };
  auto segment = [&]() -> std::optional<std::string> {
    if (rng_() % 25 == 0) return std::string("bogus");  // invalid: an invalid_value conflict
    return std::string(kSegments[rng_() % 3]);
  };
  auto address = [&](Op& op) {
    op.values["street"] = std::to_string(1 + rng_() % 300) + " " + pick_text("Street");
    op.values["city"] = std::string(kCities[rng_() % 5]);
    op.values["zip"] = std::to_string(1000 + rng_() % 9000);
    op.values["country"] = std::string(rng_() % 2 ? "BE" : "FR");
  };
  std::vector<int> deletes_at;
  for (int i = 0; i < deletes; ++i) deletes_at.push_back(static_cast<int>(rng_() % n));
  for (int i = 0; i < n; ++i) {
    Op op;
    op.side = rng_() % 2 ? 'e' : 'c';
    const bool del = std::find(deletes_at.begin(), deletes_at.end(), i) != deletes_at.end();
    if (alive_.size() < 10 || (!del && unit(rng_) < insert_share)) {
      op.kind = Op::kInsert;
      op.record = next_record_++;
      alive_.push_back(op.record);
      op.values["name"] = pick_text(op.side == 'e' ? "Erp" : "Crm");
      if (op.side == 'e') {
        op.values["credit_limit"] = money();
        op.values["segment"] = segment();
        address(op);
        if (rng_() % 6 == 0) op.values["phone"] = "+32 " + std::to_string(rng_() % 1000000);
      } else {
        op.values["phone"] = "+1 555 " + std::to_string(rng_() % 10000);
        op.values["email"] = "c" + std::to_string(op.record) + "@example.com";
        op.values["segment"] = segment();
        if (rng_() % 2) address(op);
        if (rng_() % 6 == 0) op.values["credit_limit"] = money();
      }
      ops.push_back(std::move(op));
      continue;
    }
    // Half the edits go to a few hot records, so both sides often edit one record between
    // two syncs (concurrent edits).
    const std::size_t hot = std::min<std::size_t>(alive_.size(), 12);
    const std::size_t at = rng_() % 2 ? rng_() % hot : rng_() % alive_.size();
    op.record = alive_[at];
    if (del) {
      op.kind = Op::kDelete;
      // An ERP delete is authoritative (the record is deactivated elsewhere and takes no
      // more edits); a CRM delete is foreign and the row is restored.
      if (op.side == 'e') alive_.erase(alive_.begin() + static_cast<std::ptrdiff_t>(at));
      ops.push_back(std::move(op));
      continue;
    }
    op.kind = Op::kUpdate;
    const unsigned pick = rng_() % 12;
    if (op.side == 'e') {
      if (pick < 4)
        op.values["name"] = pick_text("Erp");
      else if (pick < 7)
        op.values["credit_limit"] = money();
      else if (pick < 9)
        op.values["segment"] = segment();
      else if (pick < 10)
        address(op);
      else if (pick < 11)
        op.values["active"] = std::string(rng_() % 3 ? "true" : "false");
      else
        op.values["phone"] = "+32 " + std::to_string(rng_() % 1000000);  // foreign: reverted
    } else {
      if (pick < 3)
        op.values["name"] = pick_text("Crm");
      else if (pick < 6)
        op.values["phone"] = "+1 555 " + std::to_string(rng_() % 10000);
      else if (pick < 8)
        op.values["email"] = rng_() % 20 == 0
                                 ? std::string("not-an-email")
                                 : "e" + std::to_string(rng_() % 100000) + "@example.com";
      else if (pick < 10)
        op.values["segment"] = segment();
      else if (pick < 11)
        address(op);
      else
        op.values["credit_limit"] = money();  // foreign: reverted
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

void Applier::apply(const std::vector<Op>& ops) {
  pqxx::connection erp(d_.erp), crm(d_.crm);
  for (const Op& op : ops) {
    pqxx::connection& c = op.side == 'e' ? erp : crm;
    auto& keys = op.side == 'e' ? erp_key_ : crm_key_;
    const std::string table = op.side == 'e' ? "erp.customers" : "crm.accounts";
    const std::string key_col = op.side == 'e' ? "account_num" : "id";
    std::vector<std::optional<std::string>> params;
    std::string sql;
    if (op.kind == Op::kInsert) {
      char key[64];
      if (op.side == 'e')
        std::snprintf(key, sizeof key, "%d", 100000 + op.record);
      else
        std::snprintf(key, sizeof key, "00000000-0000-4000-8000-%012d", op.record);
      keys[op.record] = key;
      std::string cols = key_col, vals = "$1";
      params.push_back(std::string(key));
      for (const auto& [field, value] : op.values) {
        const Field* f = field_named(field);
        cols += std::string(", ") + (op.side == 'e' ? f->erp : f->crm);
        params.push_back(value);
        vals += ", $" + std::to_string(params.size());
      }
      sql = "INSERT INTO " + table + " (" + cols + ") VALUES (" + vals + ")";
    } else {
      auto it = keys.find(op.record);
      if (it == keys.end()) continue;  // not on this side (yet): the same in every scenario
      params.push_back(it->second);
      if (op.kind == Op::kDelete) {
        sql = "DELETE FROM " + table + " WHERE " + key_col + " = $1";
      } else {
        std::string set;
        for (const auto& [field, value] : op.values) {
          const Field* f = field_named(field);
          params.push_back(value);
          set += (set.empty() ? "" : ", ") + std::string(op.side == 'e' ? f->erp : f->crm) +
                 " = $" + std::to_string(params.size());
        }
        sql = "UPDATE " + table + " SET " + set + " WHERE " + key_col + " = $1";
      }
    }
    pqxx::work tx(c);
    tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
    tx.commit();
  }
}

void Applier::learn_keys() {
  // golden id -> side -> key, and side key -> golden id.
  std::map<std::string, std::map<std::string, std::string>> by_golden;
  std::map<std::string, std::string> golden_of;
  for (const Row& r :
       query(d_.control, "SELECT golden_id::text, side, row_key FROM mdsync.crosswalk")) {
    by_golden[*r[0]][*r[1]] = *r[2];
    golden_of[*r[1] + ":" + *r[2]] = *r[0];
  }
  std::set<int> records;
  for (const auto& [rec, k] : erp_key_) records.insert(rec);
  for (const auto& [rec, k] : crm_key_) records.insert(rec);
  for (int rec : records) {
    std::string gid;
    for (const auto& [side, keys] :
         {std::pair<std::string, std::map<int, std::string>*>{"erp", &erp_key_},
          {"crm", &crm_key_}}) {
      auto k = keys->find(rec);
      if (gid.empty() && k != keys->end()) {
        auto g = golden_of.find(side + ":" + k->second);
        if (g != golden_of.end()) gid = g->second;
      }
    }
    if (gid.empty()) continue;
    const auto& sides = by_golden[gid];
    if (auto e = sides.find("erp"); e != sides.end()) erp_key_[rec] = e->second;
    if (auto c = sides.find("crm"); c != sides.end()) crm_key_[rec] = c->second;
  }
}

}  // namespace mdsync::e2e::fault
