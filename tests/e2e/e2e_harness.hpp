// Test harness for end-to-end tests: a scenario owns an ERP, a CRM and a control database
// in the throwaway cluster (found through MDSYNC_TEST_PG* from tools/test), writes an
// mdsync.json and rules for them, runs the real `mdsync` binary and queries the databases.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

namespace mdsync::e2e {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The demo's customer rules, the default for scenarios.
std::string default_rules();

class Scenario {
 public:
  // Creates the three databases with the demo's ERP and CRM tables. The random name suffix
  // is printed, so a failing run can be found in the server log.
  explicit Scenario(const std::string& name);
  ~Scenario();
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  // Writes mdsync.json (with `config_patch` JSON merged over the default) and rules.
  void write_config(const std::string& rules_json = default_rules(),
                    const std::string& config_patch = "{}");
  // Writes mdsync.json with `entities` (a JSON object) in place of the demo's, and the rules
  // folder with one file per entry of `rules` (entity -> rules JSON): for sides of other shapes
  // (load their tables with erp_exec and crm_exec).
  void write_config_entities(const std::string& entities_json,
                             const std::map<std::string, std::string>& rules);
  const std::string& dir() const { return dir_; }
  std::string config_path() const { return dir_ + "/mdsync.json"; }

  RunResult mdsync(const std::vector<std::string>& args) const;
  // Starts mdsync in the background with stdout and stderr going to `log_path`.
  int spawn_mdsync(const std::vector<std::string>& args, const std::string& log_path) const;
  // Runs and asserts exit code 0, returning stdout (stderr is shown on failure).
  std::string mdsync_ok(const std::vector<std::string>& args) const;

  // One value (first column of the first row; "<null>" for NULL, "<none>" for no row).
  std::string erp(const std::string& sql) const { return query(erp_db_, sql); }
  std::string crm(const std::string& sql) const { return query(crm_db_, sql); }
  std::string control(const std::string& sql) const { return query(control_db_, sql); }
  void erp_exec(const std::string& sql) const { exec(erp_db_, sql); }
  void crm_exec(const std::string& sql) const { exec(crm_db_, sql); }
  void control_exec(const std::string& sql) const { exec(control_db_, sql); }
  // Runs `sql` with one text parameter $1.
  void exec_with(const std::string& db, const std::string& sql, const std::string& param) const;
  // Every row as "a|b|c" lines, in the order the query gives.
  std::vector<std::string> rows(const std::string& db, const std::string& sql) const;

  std::string erp_db() const { return erp_db_; }
  std::string crm_db() const { return crm_db_; }
  std::string control_db() const { return control_db_; }
  std::string dsn(const std::string& db) const;
  // The same database, connecting as `user` (the cluster trusts local connections).
  std::string dsn_as(const std::string& db, const std::string& user) const;

  // Roles are cluster-wide and tests run in parallel: every role of a scenario carries its
  // name suffix. The config's `roles` (capture, service, steward, viewer) are these names, and
  // the destructor drops them, and the roles made by create_role, after the databases.
  std::string role(const std::string& what) const { return base_ + "_" + what; }
  // CREATE ROLE role(what) with `options` ("LOGIN", "LOGIN CREATEROLE"); returns its name.
  std::string create_role(const std::string& what, const std::string& options);
  // Another empty database of this scenario (a second control store), dropped with the others.
  std::string create_database(const std::string& what);

 private:
  std::string query(const std::string& db, const std::string& sql) const;
  void exec(const std::string& db, const std::string& sql) const;

  std::string base_;
  std::string erp_db_, crm_db_, control_db_;
  std::string dir_;
  std::vector<std::string> extra_roles_;
  std::vector<std::string> extra_dbs_;
};

// The audit source of a steward action by this harness's mdsync runs: the control store's
// session user (the test cluster's role) as the display name MDSYNC_STEWARD=e2e gives.
std::string steward_source();
// The same as an SQL string literal.
std::string steward_source_sql();

std::string read_file(const std::string& path);
// Waits for `pid` up to `seconds`; returns its exit code, or -1 if it is still running.
int wait_exit(int pid, int seconds);
// Polls `probe` every 100 ms until it returns `expected` or `seconds` pass; returns the last value.
template <typename Probe>
std::string wait_until(Probe probe, const std::string& expected, int seconds);
void write_file(const std::string& path, const std::string& text);

template <typename Probe>
std::string wait_until(Probe probe, const std::string& expected, int seconds) {
  std::string last;
  for (int i = 0; i < seconds * 10; ++i) {
    last = probe();
    if (last == expected) return last;
    ::usleep(100 * 1000);
  }
  return last;
}

}  // namespace mdsync::e2e
