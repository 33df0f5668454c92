-- mdsync control store, version 17: a side can be paused (`mdsync pause SIDE`).
--
-- Capture keeps recording on a paused side and the engine keeps reconciling its changes, but
-- nothing is written to it: its write-backs stay queued until `mdsync resume`. Who paused it,
-- when and why are kept for `status` (README "Pause and resume").
ALTER TABLE mdsync.side_state ADD COLUMN paused_at timestamptz,
  ADD COLUMN paused_by text, ADD COLUMN pause_note text;
