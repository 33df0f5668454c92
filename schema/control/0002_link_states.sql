-- mdsync control store, version 2: links that outlive their row's part in the sync.
-- A side row that leaves the side's scope ('out_of_scope') or is soft-deleted ('deleted')
-- keeps its crosswalk row, key and base: the record is not re-created there, a row that
-- comes back into scope picks up where it left, and a restored record un-deletes the same
-- row instead of inserting another. Only 'linked' rows are synced.
ALTER TABLE mdsync.crosswalk
  ADD COLUMN state text NOT NULL DEFAULT 'linked'
    CHECK (state IN ('linked', 'out_of_scope', 'deleted'));

-- A delete guard on the side refused a propagated delete.
ALTER TABLE mdsync.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE mdsync.outbox ADD CONSTRAINT outbox_status_check
  CHECK (status IN ('pending', 'done', 'superseded', 'failed', 'vetoed'));

-- A foreign_delete conflict opened because this side's delete guard refused the delete: the
-- record is restored where it was deleted while the steward decides.
ALTER TABLE mdsync.conflict ADD COLUMN vetoed_by text;
