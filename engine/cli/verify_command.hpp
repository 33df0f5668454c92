// `mdsync verify [--entity E] [--repair] [--json]`: every side compared with golden through
// the mappings (store/verification.hpp), each difference printed as it is confirmed, then a
// summary. Exit 1 when a difference is left that --repair did not hand to a write-back, a
// conflict or a capture (or when run without --repair and any was found).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "mdsync/config/config.hpp"

namespace mdsync::cli {

struct VerifyRequest {
  std::optional<std::string> entity;
  bool repair = false;
  bool json = false;
  std::size_t chunk_rows = 1000;  // rows read (and links looked for) per step
};

int cmd_verify(const config::Config& config, const VerifyRequest& request);

}  // namespace mdsync::cli
