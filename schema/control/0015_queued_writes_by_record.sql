-- mdsync control store, version 15: a batch reads its records' queued writes by record.
--
-- Every batch reads the queued writes (pending or cancelling) of the records it touched, by
-- golden_id (RecordRepository::pending_writes_of). outbox_queued leads with the side and
-- outbox_record holds pending writes only, so that read scanned the whole of outbox_queued,
-- dead entries of writes done since the last vacuum included: 6 ms a batch under a steady
-- 1,000 changes/s (tools/bench-sync, latency). This index serves it and every read of one
-- record's pending writes, which outbox_record served.
CREATE INDEX outbox_queued_by_record ON mdsync.outbox (golden_id, id)
  WHERE status IN ('pending', 'cancelling');
DROP INDEX mdsync.outbox_record;
