-- mdsync control store, version 18: a side's circuit breaker and write rate limit, as the
-- engine that holds the lease sees them, so that `mdsync status` (another process) shows them.
--
-- `circuit` is `closed` (the side is used), `open` (after consecutive failures the engine
-- leaves it alone until `circuit_retry_at`) or `half_open` (one probe is out). `circuit_opened_at`
-- is when the current episode began. `throttled_since` is set while the side's
-- `max_writes_per_s` keeps queued write-backs waiting. The engine writes these when they change,
-- and again when it takes the lease, so what an earlier process left is not shown as current.
ALTER TABLE mdsync.side_state
  ADD COLUMN circuit text NOT NULL DEFAULT 'closed'
    CHECK (circuit IN ('closed', 'open', 'half_open')),
  ADD COLUMN circuit_opened_at timestamptz,
  ADD COLUMN circuit_retry_at timestamptz,
  ADD COLUMN throttled_since timestamptz;
