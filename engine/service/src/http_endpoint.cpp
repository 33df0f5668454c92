#include "http_endpoint.hpp"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <thread>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/health_probe.hpp"

namespace mdsync::service {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

}  // namespace

struct HttpEndpoint::Impl {
  Impl(const config::Config& c, ServiceMetrics& m) : config(c), metrics(m), probe(c) {}

  const config::Config& config;
  ServiceMetrics& metrics;
  store::HealthProbe probe;  // used on the HTTP thread only
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::atomic<bool> stopping{false};

  // The status gauges, or null when the control store cannot be read (`why` says so).
  nlohmann::json gauges(std::string& why) {
    try {
      return probe.gauges();
    } catch (const std::exception& e) {
      why = first_line(e.what());
      return nullptr;
    }
  }

  // status, content type, body
  std::tuple<http::status, std::string, std::string> answer(const std::string& target) {
    const std::string path = target.substr(0, target.find('?'));
    if (path == "/metrics") {
      std::string why;
      const nlohmann::json status = gauges(why);
      return {http::status::ok, "text/plain; version=0.0.4; charset=utf-8", metrics.render(status)};
    }
    if (path == "/healthz") {
      if (stopping) return {http::status::service_unavailable, "text/plain", "stopping\n"};
      return {http::status::ok, "text/plain", "ok\n"};
    }
    if (path == "/readyz") {
      // Ready: this process holds the lease (it is the engine, not a standby), and the control
      // store and every side answer now. The body names each check.
      bool ready = !stopping;
      std::string body = stopping ? "stopping\n" : "";
      const bool lease = metrics.lease_held();
      ready = ready && lease;
      body += std::string("lease: ") + (lease ? "held" : "not held") + "\n";
      std::string why;
      const nlohmann::json status = gauges(why);
      if (status.is_null()) {
        ready = false;
        body += "control store: unreachable: " + why + "\n";
      } else {
        body += "control store: ok\n";
        static const nlohmann::json kNone = nlohmann::json::object();
        const auto found = status.find("sides");
        const nlohmann::json& sides = found != status.end() ? *found : kNone;
        for (const auto& [side, s] : sides.items()) {
          const bool up = s.value("reachable", false);
          ready = ready && up;
          body += "side " + side + ": " +
                  (up ? std::string("ok") : "unreachable: " + s.value("reach_error", "")) + "\n";
        }
      }
      return {ready ? http::status::ok : http::status::service_unavailable, "text/plain",
              (ready ? "ready\n" : "not ready\n") + body};
    }
    return {http::status::not_found, "text/plain",
            "not found; this service answers /metrics, /healthz and /readyz\n"};
  }

  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket socket, Impl& impl) : stream(std::move(socket)), impl(impl) {}
    beast::tcp_stream stream;
    Impl& impl;
    beast::flat_buffer buffer;
    http::request<http::empty_body> request;
    http::response<http::string_body> response;

    void start() {
      stream.expires_after(std::chrono::seconds(10));
      http::async_read(stream, buffer, request,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (!ec) self->respond();
                       });
    }

    void respond() {
      response.version(request.version());
      response.keep_alive(false);
      response.set(http::field::server, "mdsync");
      if (request.method() != http::verb::get && request.method() != http::verb::head) {
        response.result(http::status::method_not_allowed);
        response.set(http::field::allow, "GET, HEAD");
        response.set(http::field::content_type, "text/plain");
        response.body() = "only GET and HEAD\n";
      } else {
        auto [status, type, body] = impl.answer(std::string(request.target()));
        response.result(status);
        response.set(http::field::content_type, type);
        if (request.method() != http::verb::head) response.body() = std::move(body);
      }
      response.prepare_payload();
      stream.expires_after(std::chrono::seconds(10));
      http::async_write(stream, response,
                        [self = shared_from_this()](beast::error_code, std::size_t) {
                          beast::error_code ignored;
                          self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        });
    }
  };

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) std::make_shared<Session>(std::move(socket), *this)->start();
      accept();
    });
  }
};

HttpEndpoint::HttpEndpoint(const config::Config& config, ServiceMetrics& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {}

HttpEndpoint::~HttpEndpoint() {
  if (impl_->thread.joinable()) {
    asio::post(impl_->io, [this] {
      beast::error_code ignored;
      impl_->acceptor.close(ignored);
      impl_->io.stop();
    });
    impl_->thread.join();
  }
}

void HttpEndpoint::start() {
  const std::string& host = impl_->config.service.http_host;
  const int port = impl_->config.service.http_port;
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  try {
    tcp::resolver resolver(impl_->io);
    const auto found = resolver.resolve(host, std::to_string(port),
                                        tcp::resolver::passive | tcp::resolver::numeric_service);
    const tcp::endpoint endpoint = found.begin()->endpoint();
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen();
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot listen on " + where +
                             " for /metrics (service.http_listen): " + first_line(e.what()));
  }
  const tcp::endpoint bound = impl_->acceptor.local_endpoint();
  log::info("http_listening", {{"address", bound.address().to_string()},
                               {"port", static_cast<std::int64_t>(bound.port())},
                               {"paths", std::string("/metrics /healthz /readyz")}});
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void HttpEndpoint::stopping() {
  impl_->stopping = true;
}

}  // namespace mdsync::service
