-- mdsync control store, version 7: what operators act on and what `mdsync status` reports.
--
-- A change kept in capture_error and a write-back a side refused (outbox status 'failed') are
-- "error items" (`mdsync errors`): each is open until a steward retries or discards it, and
-- keeps who did that, when, and the note. Only open items count in `mdsync status`.
ALTER TABLE mdsync.capture_error
  ADD COLUMN status text NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'retried', 'discarded')),
  ADD COLUMN handled_at timestamptz,
  ADD COLUMN handled_by text,
  ADD COLUMN note text;
CREATE INDEX capture_error_open ON mdsync.capture_error (side) WHERE status = 'open';

-- The outbox status stays the engine's ('failed'); the steward's handling of a failed row is
-- kept beside it (NULL: open).
ALTER TABLE mdsync.outbox
  ADD COLUMN review text CHECK (review IN ('retried', 'discarded')),
  ADD COLUMN reviewed_at timestamptz,
  ADD COLUMN reviewed_by text,
  ADD COLUMN review_note text;
CREATE INDEX outbox_failed_open ON mdsync.outbox (side, id)
  WHERE status = 'failed' AND review IS NULL;

-- A side's history of going away and coming back. side_state holds the current error only
-- (cleared when the side recovers); this keeps every episode, for `status`'s recent_errors.
CREATE TABLE mdsync.side_event (
  id       bigserial PRIMARY KEY,
  side     text NOT NULL,
  kind     text NOT NULL CHECK (kind IN ('error', 'recovered')),
  message  text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX side_event_recent ON mdsync.side_event (side, id);
