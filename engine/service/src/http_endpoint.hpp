// The service's HTTP face for monitoring: /metrics (Prometheus text), /healthz (the process
// runs and is not stopping) and /readyz (lease held, control store and every side answering).
// It has its own thread and io_context, and its own control connection (HealthProbe), so a
// long pass never delays a scrape and a scrape never touches the engine's connections.
#pragma once

#include <memory>
#include <string>

#include "mdsync/config/config.hpp"
#include "service_metrics.hpp"

namespace mdsync::service {

class HttpEndpoint {
 public:
  HttpEndpoint(const config::Config& config, ServiceMetrics& metrics);
  ~HttpEndpoint();  // stops and joins
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds service.http_host:http_port and starts serving; throws, naming the address and the
  // config key, when it cannot. Logs `http_listening` with the port bound (port 0 takes a free
  // one).
  void start();
  // /healthz and /readyz answer 503 from now on (the service drains); the thread goes on until
  // destruction, so a probe during the drain is answered.
  void stopping();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdsync::service
