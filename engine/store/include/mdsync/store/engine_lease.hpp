// One engine per control store: a session-level advisory lock on the control store that
// `mdsync run` (and `run --once`), `sync --initial` and `init` hold while they work, so two of
// them never reconcile or write back at once. Steward commands take none: they coordinate
// with the engine through row locks. The lock ends with its session, so a killed engine
// frees it as soon as the server notices.
#pragma once

#include <stdexcept>

#include "mdsync/store/db_connection.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// Another session holds the lease; the message names it (server pid, application_name,
// client, connected since) as far as this user may see pg_stat_activity. A ConnectionError,
// so a running service that lost its control connection and finds the lease taken keeps
// retrying with its backoff (a standby) instead of working.
class LeaseHeld : public ConnectionError {
  using ConnectionError::ConnectionError;
};

// Takes the lease on `control`'s session. A session that just lost its client (an engine
// killed a moment ago) may still hold it: it is waited for a few seconds before LeaseHeld.
void take_engine_lease(pqxx::connection_base& control);

}  // namespace mdsync::store
