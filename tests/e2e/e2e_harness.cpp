#include "e2e_harness.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <sstream>

namespace mdsync::e2e {

namespace {

std::string env_or_fail(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    throw std::runtime_error(std::string(name) +
                             " is not set: run the end-to-end tests through tools/test, which "
                             "starts the throwaway PostgreSQL cluster they need");
  return v;
}

std::string admin_dsn(const std::string& db) {
  return "host='" + env_or_fail("MDSYNC_TEST_PGHOST") +
         "' port=" + env_or_fail("MDSYNC_TEST_PGPORT") +
         " user=" + env_or_fail("MDSYNC_TEST_PGUSER") + " dbname=" + db;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

}  // namespace

std::string steward_source() {
  return "steward:" + env_or_fail("MDSYNC_TEST_PGUSER") + " as e2e";
}

std::string steward_source_sql() {
  std::string q = "'";
  for (char c : steward_source()) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string default_rules() {
  return read_file(std::string(MDSYNC_DEMO_DATA) + "/rules/customer.json");
}

Scenario::Scenario(const std::string& name) {
  std::random_device rd;
  const std::uint32_t seed = rd();
  std::mt19937 rng(seed);
  const std::string suffix = std::to_string(rng() % 1000000000u);
  std::string base = "t_" + name.substr(0, 30) + "_" + suffix;
  for (char& c : base)
    c = static_cast<char>(std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_');
  base_ = base;
  erp_db_ = base + "_erp";
  crm_db_ = base + "_crm";
  control_db_ = base + "_ctl";
  std::cout << "[scenario " << name << "] databases " << base << "_{erp,crm,ctl} (seed " << seed
            << ")\n";
  {
    pqxx::connection admin(admin_dsn("postgres"));
    pqxx::nontransaction tx(admin);
    for (const auto& db : {erp_db_, crm_db_, control_db_})
      tx.exec("CREATE DATABASE " + tx.quote_name(db));
  }
  exec(erp_db_, read_file(std::string(MDSYNC_DEMO_DATA) + "/erp.sql"));
  exec(crm_db_, read_file(std::string(MDSYNC_DEMO_DATA) + "/crm.sql"));
  dir_ = std::filesystem::temp_directory_path() / ("mdsync-e2e-" + base);
  std::filesystem::create_directories(dir_ + "/rules");
}

Scenario::~Scenario() {
  try {
    pqxx::connection admin(admin_dsn("postgres"));
    pqxx::nontransaction tx(admin);
    std::vector<std::string> dbs = {erp_db_, crm_db_, control_db_};
    dbs.insert(dbs.end(), extra_dbs_.begin(), extra_dbs_.end());
    for (const auto& db : dbs)
      tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(db) + " WITH (FORCE)");
    // After the databases: a role that owns objects or holds privileges in one cannot go.
    std::vector<std::string> roles = extra_roles_;
    for (const char* what : {"capture", "service", "steward", "viewer"})
      roles.push_back(role(what));
    for (const auto& r : roles) tx.exec("DROP ROLE IF EXISTS " + tx.quote_name(r));
  } catch (const std::exception& e) {
    std::cerr << "cleanup: " << e.what() << "\n";
  }
  if (!::testing::Test::HasFailure()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  } else {
    std::cout << "[scenario] kept " << dir_ << " for inspection\n";
  }
}

std::string Scenario::dsn(const std::string& db) const {
  return admin_dsn(db);
}

std::string Scenario::dsn_as(const std::string& db, const std::string& user) const {
  return "host='" + env_or_fail("MDSYNC_TEST_PGHOST") +
         "' port=" + env_or_fail("MDSYNC_TEST_PGPORT") + " user=" + user + " dbname=" + db;
}

std::string Scenario::create_database(const std::string& what) {
  const std::string name = base_ + "_" + what;
  pqxx::connection admin(admin_dsn("postgres"));
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
  extra_dbs_.push_back(name);
  return name;
}

std::string Scenario::create_role(const std::string& what, const std::string& options) {
  const std::string name = role(what);
  pqxx::connection admin(admin_dsn("postgres"));
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE ROLE " + tx.quote_name(name) + " " + options);
  extra_roles_.push_back(name);
  return name;
}

void Scenario::write_config(const std::string& rules_json, const std::string& config_patch) {
  nlohmann::json config =
      nlohmann::json::parse(read_file(std::string(MDSYNC_DEMO_DATA) + "/mdsync.json"));
  config["control"] = dsn(control_db_);
  config["sides"]["erp"]["dsn"] = dsn(erp_db_);
  config["sides"]["crm"]["dsn"] = dsn(crm_db_);
  config["service"] = {
      {"poll_interval_ms", 50}, {"batch_size", 500}, {"writeback_backoff_initial_ms", 100}};
  config["roles"] = {{"capture", role("capture")},
                     {"service", role("service")},
                     {"steward", role("steward")},
                     {"viewer", role("viewer")}};
  config.merge_patch(nlohmann::json::parse(config_patch));
  write_file(config_path(), config.dump(2));
  std::filesystem::remove_all(dir_ + "/rules");
  std::filesystem::create_directories(dir_ + "/rules");
  write_file(dir_ + "/rules/customer.json", rules_json);
}

void Scenario::write_config_entities(const std::string& entities_json,
                                     const std::map<std::string, std::string>& rules) {
  write_config();
  nlohmann::json config = nlohmann::json::parse(read_file(config_path()));
  config["entities"] = nlohmann::json::parse(entities_json);
  write_file(config_path(), config.dump(2));
  std::filesystem::remove_all(dir_ + "/rules");
  std::filesystem::create_directories(dir_ + "/rules");
  for (const auto& [entity, text] : rules) write_file(dir_ + "/rules/" + entity + ".json", text);
}

RunResult Scenario::mdsync(const std::vector<std::string>& args) const {
  static int counter = 0;
  const std::string base = dir_ + "/run" + std::to_string(++counter);
  std::string cmd = "MDSYNC_CONFIG=" + shell_quote(config_path()) + " MDSYNC_STEWARD=e2e " +
                    shell_quote(MDSYNC_BINARY);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null >" + shell_quote(base + ".out") + " 2>" + shell_quote(base + ".err");
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

int Scenario::spawn_mdsync(const std::vector<std::string>& args,
                           const std::string& log_path) const {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("MDSYNC_CONFIG", config_path().c_str(), 1);
    if (!std::freopen(log_path.c_str(), "w", stdout) ||
        !std::freopen(log_path.c_str(), "a", stderr))
      ::_exit(127);
    std::vector<char*> argv;
    std::string bin = MDSYNC_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(int pid, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::usleep(100 * 1000);
  }
  return -1;
}

std::string Scenario::mdsync_ok(const std::vector<std::string>& args) const {
  const RunResult r = mdsync(args);
  std::string joined;
  for (const auto& a : args) joined += " " + a;
  EXPECT_EQ(r.exit_code, 0) << "mdsync" << joined << "\nstdout:\n"
                            << r.out << "\nstderr:\n"
                            << r.err;
  return r.out;
}

std::string Scenario::query(const std::string& db, const std::string& sql) const {
  pqxx::connection c(dsn(db));
  pqxx::nontransaction tx(c);
  const pqxx::result r = tx.exec(sql);
  if (r.empty()) return "<none>";
  return r[0][0].is_null() ? "<null>" : r[0][0].as<std::string>();
}

void Scenario::exec(const std::string& db, const std::string& sql) const {
  pqxx::connection c(dsn(db));
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

void Scenario::exec_with(const std::string& db, const std::string& sql,
                         const std::string& param) const {
  pqxx::connection c(dsn(db));
  pqxx::nontransaction tx(c);
  tx.exec_params(sql, param);
}

std::vector<std::string> Scenario::rows(const std::string& db, const std::string& sql) const {
  pqxx::connection c(dsn(db));
  pqxx::nontransaction tx(c);
  std::vector<std::string> out;
  for (const auto& row : tx.exec(sql)) {
    std::string line;
    for (pqxx::row::size_type i = 0; i < row.size(); ++i)
      line +=
          (i ? "|" : "") + (row[i].is_null() ? std::string("<null>") : row[i].as<std::string>());
    out.push_back(line);
  }
  return out;
}

}  // namespace mdsync::e2e
