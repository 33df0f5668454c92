-- mdsync control store, version 10: a write a side's database refuses is a conflict.
--
-- A write-back refused by the side's database (a unique index, a CHECK, a NOT NULL, a trigger)
-- for a field it sets opens a `write_refused` conflict on that field's unit, naming the side,
-- the constraint and the value, like an `invalid_value` one: the unit is not written to that
-- side while it is open, and the steward resolves it as any unit conflict (README "The CLI").
ALTER TABLE mdsync.conflict DROP CONSTRAINT conflict_kind_check;
ALTER TABLE mdsync.conflict ADD CONSTRAINT conflict_kind_check CHECK (kind IN ('concurrent_edit',
  'foreign_write', 'invalid_value', 'unauthorized_create', 'foreign_delete',
  'possible_duplicate', 'write_refused'));
