-- mdsync control store, version 4: queued write-backs that are withdrawn, and write-backs
-- that keep being superseded.
--
-- A queued write the record no longer wants (an insert into a side whose record was deleted
-- meanwhile, an update of a row that is gone) is 'cancelling' until its side confirms it was
-- never applied: the side records the outbox id as cancelled in mdsync.applied, so the write
-- can never be applied later, or reports that an earlier attempt did apply it (the engine
-- crashed before it heard), and the engine then takes it as applied. Either way it ends as
-- 'superseded' (withdrawn) or 'done'.
ALTER TABLE mdsync.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE mdsync.outbox ADD CONSTRAINT outbox_status_check
  CHECK (status IN ('pending', 'cancelling', 'done', 'superseded', 'failed', 'vetoed'));

-- A write is not sent before this time: it was superseded again and again without any change
-- captured on its side (the side holds values the engine never saw), so it backs off.
ALTER TABLE mdsync.outbox ADD COLUMN not_before timestamptz;

-- The writes to deliver: per side, the oldest queued write of each record first.
CREATE INDEX outbox_queued ON mdsync.outbox (side, golden_id, id)
  WHERE status IN ('pending', 'cancelling');

-- How many write-backs to this row were superseded in a row while no change of the row was
-- captured: 0 after any reconciled change of the row or any applied write. Above 1 the side
-- holds something the engine never saw, and the write backs off (`mdsync status` shows it).
ALTER TABLE mdsync.crosswalk ADD COLUMN superseded_streak integer NOT NULL DEFAULT 0;

-- Write-back transactions retried because they deadlocked with users' transactions (or failed
-- to serialize): contention, counted for `mdsync status`, never a side error.
ALTER TABLE mdsync.side_state ADD COLUMN contention_retries bigint NOT NULL DEFAULT 0;
