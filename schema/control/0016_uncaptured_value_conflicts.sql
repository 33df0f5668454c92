-- mdsync control store, version 16: `mdsync verify --repair` opens uncaptured_value conflicts.
--
-- A side that owns or shares a unit and holds a value for it that no captured change explains
-- (written with capture bypassed, or brought back by a restore from a backup) may hold a real
-- edit or an old value: an `uncaptured_value` conflict holds the unit until a steward takes
-- the side's value (--take SIDE) or keeps golden (dismiss: golden is written back). README
-- "Verify: what capture never saw".
ALTER TABLE mdsync.conflict DROP CONSTRAINT conflict_kind_check;
ALTER TABLE mdsync.conflict ADD CONSTRAINT conflict_kind_check CHECK (kind IN ('concurrent_edit',
  'foreign_write', 'invalid_value', 'unauthorized_create', 'foreign_delete',
  'possible_duplicate', 'write_refused', 'uncaptured_value'));
