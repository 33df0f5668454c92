-- mdsync control store, version 19: the records `sync --initial` still has to plan.
--
-- `sync --initial` plans the write-backs of every record it touched once it has read every
-- side. The records it set aside at each checkpoint wait here instead of in the engine's memory,
-- which then stays flat in the table's size (16 bytes a visit in memory made it grow by about
-- 30 MB at a million rows). Rows live within that one control transaction: it inserts them and
-- deletes them before it commits, so other sessions never see any. Unlogged: nothing in it
-- outlives a transaction, so it need not be in the WAL.
CREATE UNLOGGED TABLE mdsync.planning_queue (
  golden_id bigint PRIMARY KEY,
  entity    text NOT NULL
);
