-- mdsync control store, version 20: the queue's lookups by record no longer depend on the
-- planner's statistics of the queue (issue 12).
--
-- Four partial indexes covered the queued writes: outbox_pending (side, id) and
-- outbox_queued (side, golden_id, id), from before the batch pipeline, outbox_queued_in_order
-- (side, id) for the walk (0013) and outbox_queued_by_record (golden_id, id) for the reads by
-- record (0015). A partial index whose predicate the query implies may be scanned whole, and
-- its size is estimated from the statistics of the last ANALYZE: taken while the queue was
-- empty, they price every partial index at one row, whatever it holds now. A backlog fills the
-- queue faster than autovacuum analyzes it, so the lookups of a batch's queued writes by
-- record, which should probe outbox_queued_by_record, scanned the whole of
-- outbox_queued_in_order once per record instead: 110 million index entries read in a drain of
-- 20,000 changes, 460 ms a batch, half the drain (tools/bench-sync --sizes 20000, drain).
--
-- Now every lookup by record has one partial index to use, outbox_queued_by_record:
-- * outbox_pending and outbox_queued go: their reads (by record and side) are served by
--   outbox_queued_by_record, since a record has few queued writes; and each queued write now
--   costs two partial-index entries instead of four.
-- * outbox_queued_in_order is only usable by a query that says `id > 0` in so many words, as the
--   walk of a side's queue does (outbox_queue.cpp); no lookup by record says it. Every id is
--   positive (bigserial), so the predicate leaves out nothing.
DROP INDEX mdsync.outbox_pending;
DROP INDEX mdsync.outbox_queued;
DROP INDEX mdsync.outbox_queued_in_order;
CREATE INDEX outbox_queued_in_order ON mdsync.outbox (side, id)
  WHERE status IN ('pending', 'cancelling') AND id > 0;
