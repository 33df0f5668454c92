-- Matching, first contact (issue 11; engine/mapping/MAPPING.md, "Matching existing records").
--
-- Fuzzy keys compare by similarity (Jaro-Winkler of the normalized values, computed by the
-- engine), no longer by equality. A record's fuzzy key is stored once per blocking key
-- (mapping::fuzzy_blocks: the first three letters of each of its first words) in `value`, with
-- the whole normalized value to compare in `compared`; a row is compared only with the records
-- of its own blocks, found through match_key_lookup like an exact key. Exact keys keep
-- `compared` NULL. The engine rebuilds every entity's keys at its next match, since the stored
-- match spec no longer matches the one it builds (it now names the blocking).
ALTER TABLE mdsync.match_key ADD COLUMN compared text;
DELETE FROM mdsync.match_spec;

-- Rows held by an open unauthorized_create or possible_duplicate conflict (a CRM prospect the
-- rules do not let the CRM create) have no golden record, so they are not in match_key; their
-- exact keys, built from the values the conflict holds (and kept current as later captures
-- attach to it), are here. When another side creates the same company, its row finds the held
-- row here: the record is created from it and the held row is linked, not inserted a second
-- time. A row is a candidate only while its conflict is open (lookups join mdsync.conflict).
CREATE TABLE mdsync.held_match_key (
  conflict_id bigint NOT NULL REFERENCES mdsync.conflict (id),
  entity      text NOT NULL,
  side        text NOT NULL,  -- the held row's side: a row never matches its own side's rows
  name        text NOT NULL,  -- MatchKeySpec::name()
  value       text NOT NULL,  -- normalized, as in match_key
  PRIMARY KEY (conflict_id, name, value)
);
CREATE INDEX held_match_key_lookup ON mdsync.held_match_key (entity, name, value);
