-- Indexes for the batch pipeline (issue 12, "Throughput").
--
-- The write-backs to deliver are read per side in id order, the oldest queued write of each
-- record only: walking this index in id order and stopping at the batch size costs what the
-- batch returns, however long the queue (the DISTINCT ON over the whole queue it replaces cost
-- 5 ms at 2,000 queued writes and up to a second at 100,000).
CREATE INDEX outbox_queued_in_order ON mdsync.outbox (side, id)
  WHERE status IN ('pending', 'cancelling');

-- A row with no golden record held by an open create conflict (unauthorized_create,
-- possible_duplicate) is looked up by its key for every batch that captures an unlinked row.
CREATE INDEX conflict_open_create ON mdsync.conflict (entity, side, row_key)
  WHERE status = 'open' AND kind IN ('unauthorized_create', 'possible_duplicate');
