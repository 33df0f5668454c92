// `mdsync errors list|show|retry|discard`: the error items an operator acts on (changes the
// engine kept in capture_error, write-backs a side refused), by their typed ids (c12, w34).
// Retry and discard are all-or-nothing across the ids given and audited under the steward's
// identity.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/error_items.hpp"

namespace mdsync::cli {

int cmd_errors_list(const config::Config& config, const store::ErrorFilter& filter, bool json);
int cmd_errors_show(const config::Config& config, const std::string& id, bool json);

struct ErrorsRequest {
  std::vector<std::string> ids;
  std::optional<std::string> note;
  bool discard = false;
};
int cmd_errors_handle(const config::Config& config, const ErrorsRequest& request);

}  // namespace mdsync::cli
