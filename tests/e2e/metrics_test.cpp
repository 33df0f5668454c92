// /metrics, /healthz and /readyz of `mdsync run` (issue 13): scraped after a known workload,
// the counters say what the service did (changes applied, reverted and quarantined per side
// and entity, write-backs per result, the latency histogram) and the gauges what the control
// store holds (open conflicts, queues, sides up). /readyz names what is not ready (a side
// that refuses connections) and recovers with it. The address comes from the config; port 0
// takes a free one, which the service logs, so no test uses a fixed port.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

const char* kHttpAnyPort = R"({"service": {"http_listen": "127.0.0.1:0"}})";

struct HttpReply {
  int status = 0;
  std::string body;
};

// One request on a fresh connection; status 0 when nothing answered.
HttpReply http(int port, const std::string& method, const std::string& path) {
  HttpReply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return reply;
  }
  const std::string request =
      method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return reply;
  }
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, buf + n);
  ::close(fd);
  std::smatch m;
  if (std::regex_search(raw, m, std::regex("^HTTP/1\\.1 ([0-9]{3})")))
    reply.status = std::stoi(m[1]);
  const auto end = raw.find("\r\n\r\n");
  if (end != std::string::npos) reply.body = raw.substr(end + 4);
  return reply;
}

// The port the service logged (`http_listening`), or 0 when it did not within a minute.
int port_of(const Service& svc) {
  int port = 0;
  wait_until(
      [&] {
        const auto e = events(svc.log(), "http_listening");
        if (!e.empty()) port = e.front().value("port", 0);
        return std::string(e.empty() ? "waiting" : "logged");
      },
      "logged", 60);
  return port;
}

// The samples of a scrape: "name{labels}" -> value text.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

std::string metric(const std::map<std::string, std::string>& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? "<absent>" : it->second;
}

// Waits until `path` answers `status`; returns the last reply.
HttpReply wait_for_status(int port, const std::string& path, int status) {
  HttpReply last;
  wait_until(
      [&] {
        last = http(port, "GET", path);
        return std::to_string(last.status);
      },
      std::to_string(status), 60);
  return last;
}

TEST(MetricsTest, AScrapeAfterAKnownWorkloadCountsWhatTheServiceDid) {
  Scenario s("metrics_scrape");
  s.write_config(default_rules(), R"({"service": {"http_listen": "127.0.0.1:0"},
                                      "sides": {"crm": {"max_writes_per_s": 1000}}})");
  s.mdsync_ok({"init"});
  Service svc(s, "service");
  const int port = port_of(svc);
  ASSERT_GT(port, 0) << svc.log();
  EXPECT_EQ(http(port, "GET", "/healthz").body, "ok\n");
  const HttpReply ready = wait_for_status(port, "/readyz", 200);
  EXPECT_EQ(ready.body, "ready\nlease: held\ncontrol store: ok\nside crm: ok\nside erp: ok\n");

  // Three ERP creates (applied on the ERP, inserted on the CRM); a CRM write of the ERP-owned
  // credit limit (reverted, written back to the CRM); then one concurrent edit of the shared
  // segment on both sides (quarantined on whichever side is decided second).
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Acme', 100.00), (2, 'Globex', 200.00), (3, 'Initech', 300.00)");
  ASSERT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "3", 60), "3")
      << svc.log();
  s.crm_exec("UPDATE crm.accounts SET credit_limit = 999 WHERE \"accountName\" = 'Acme'");
  ASSERT_EQ(wait_until(
                [&] {
                  return s.crm(
                      "SELECT credit_limit FROM crm.accounts WHERE \"accountName\" ="
                      " 'Acme'");
                },
                "100.0000", 60),
            "100.0000")
      << svc.log();
  // Paused, so the ERP's segment does not reach the CRM before the CRM's own edit: the two
  // edits meet in the engine as a concurrent edit.
  s.mdsync_ok({"pause", "crm"});
  s.erp_exec("UPDATE erp.customers SET segment_code = 'enterprise' WHERE account_num = 2");
  s.crm_exec("UPDATE crm.accounts SET segment = 'public' WHERE \"accountName\" = 'Globex'");
  ASSERT_EQ(
      wait_until(
          [&] { return s.control("SELECT count(*) FROM mdsync.conflict WHERE status = 'open'"); },
          "1", 60),
      "1")
      << svc.log();

  const HttpReply scrape = http(port, "GET", "/metrics");
  ASSERT_EQ(scrape.status, 200) << scrape.body;
  const auto m = samples(scrape.body);
  EXPECT_EQ(metric(m, "mdsync_changes_total{side=\"erp\",entity=\"customer\",outcome=\"applied\"}"),
            "4")
      << scrape.body;
  EXPECT_EQ(
      metric(m, "mdsync_changes_total{side=\"crm\",entity=\"customer\",outcome=\"reverted\"}"), "1")
      << scrape.body;
  // The segment edits: the ERP's, committed first, is decided first and applied (a fourth
  // applied ERP change); the CRM's meets it and is quarantined.
  EXPECT_EQ(
      metric(m, "mdsync_changes_total{side=\"crm\",entity=\"customer\",outcome=\"quarantined\"}"),
      "1")
      << scrape.body;
  EXPECT_EQ(
      metric(m, "mdsync_changes_total{side=\"erp\",entity=\"customer\",outcome=\"quarantined\"}"),
      "<absent>")
      << scrape.body;
  EXPECT_EQ(
      metric(m, "mdsync_writebacks_total{side=\"crm\",entity=\"customer\",result=\"applied\"}"),
      "4")
      << scrape.body;  // three inserts and the revert; the segment waits for the paused CRM
  EXPECT_EQ(metric(m, "mdsync_capture_to_writeback_seconds_count"), "4") << scrape.body;
  EXPECT_EQ(metric(m, "mdsync_capture_to_writeback_seconds_bucket{le=\"+Inf\"}"), "4");
  EXPECT_EQ(metric(m, "mdsync_conflicts_open{entity=\"customer\",kind=\"concurrent_edit\"}"), "1")
      << scrape.body;
  EXPECT_EQ(metric(m, "mdsync_side_paused{side=\"crm\"}"), "1");
  EXPECT_EQ(metric(m, "mdsync_side_up{side=\"erp\"}"), "1");
  EXPECT_EQ(metric(m, "mdsync_capture_backlog{side=\"erp\"}"), "0");
  EXPECT_EQ(metric(m, "mdsync_lease_held"), "1");
  EXPECT_EQ(metric(m, "mdsync_side_circuit_state{side=\"crm\",state=\"closed\"}"), "1")
      << scrape.body;
  EXPECT_EQ(metric(m, "mdsync_side_circuit_state{side=\"crm\",state=\"open\"}"), "0");
  EXPECT_EQ(metric(m, "mdsync_side_write_limit_per_s{side=\"crm\"}"), "1000");
  EXPECT_EQ(metric(m, "mdsync_side_write_limit_per_s{side=\"erp\"}"), "<absent>");
  EXPECT_EQ(metric(m, "mdsync_side_throttled{side=\"crm\"}"), "0");
  EXPECT_EQ(metric(m, "mdsync_control_up"), "1");
  EXPECT_EQ(metric(m, "mdsync_pass_failures_total"), "0");
  EXPECT_NE(metric(m, "mdsync_batch_duration_seconds_count"), "0");
  EXPECT_NE(scrape.body.find("\nmdsync_build_info{version=\"0.1.0\",control_schema=\""),
            std::string::npos)
      << scrape.body;
  EXPECT_EQ(metric(m, "mdsync_writeback_pending{side=\"crm\"}"), "1") << scrape.body;

  EXPECT_EQ(http(port, "GET", "/nowhere").status, 404);
  EXPECT_EQ(http(port, "POST", "/metrics").status, 405);
  EXPECT_EQ(http(port, "HEAD", "/healthz").status, 200);
  EXPECT_EQ(svc.stop(), 0) << svc.log();
}

TEST(MetricsTest, ReadyzNamesASideThatRefusesConnectionsAndRecoversWithIt) {
  Scenario s("metrics_ready");
  s.write_config(default_rules(), kHttpAnyPort);
  s.mdsync_ok({"init"});
  Service svc(s, "service");
  const int port = port_of(svc);
  ASSERT_GT(port, 0) << svc.log();
  ASSERT_EQ(wait_for_status(port, "/readyz", 200).status, 200) << svc.log();

  sql_exec(s.dsn("postgres"), "ALTER DATABASE " + q(s.crm_db()) + " WITH ALLOW_CONNECTIONS false");
  const HttpReply down = wait_for_status(port, "/readyz", 503);
  sql_exec(s.dsn("postgres"), "ALTER DATABASE " + q(s.crm_db()) + " WITH ALLOW_CONNECTIONS true");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("not ready\n"), std::string::npos) << down.body;
  EXPECT_NE(down.body.find("side crm: unreachable: "), std::string::npos) << down.body;
  EXPECT_NE(down.body.find("side erp: ok"), std::string::npos) << down.body;
  EXPECT_EQ(wait_for_status(port, "/readyz", 200).status, 200);
  // The process itself stayed healthy throughout.
  EXPECT_EQ(http(port, "GET", "/healthz").status, 200);
  EXPECT_EQ(svc.stop(), 0) << svc.log();
}

TEST(MetricsTest, AnAddressInUseOrMalformedIsAClearError) {
  // A port another process holds: the service does not start, and says where and why.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int taken = ntohs(addr.sin_port);

  Scenario s("metrics_errors");
  s.write_config(default_rules(),
                 R"({"service": {"http_listen": "127.0.0.1:)" + std::to_string(taken) + "\"}}");
  s.mdsync_ok({"init"});
  const RunResult busy = s.mdsync({"run"});
  ::close(fd);
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("cannot listen on 127.0.0.1:" + std::to_string(taken) +
                          " for /metrics (service.http_listen)"),
            std::string::npos)
      << busy.err;

  s.write_config(default_rules(), R"({"service": {"http_listen": "localhost:http"}})");
  const RunResult bad = s.mdsync({"run", "--once"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("service.http_listen must be PORT, HOST:PORT or [IPv6]:PORT"),
            std::string::npos)
      << bad.err;
}

}  // namespace
}  // namespace mdsync::e2e
