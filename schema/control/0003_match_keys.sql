-- Match keys (engine/mapping/MAPPING.md, "Matching existing records"): for each live golden
-- record of an entity that has a `match` spec, its keys as mapping::match_keys builds them
-- from the golden values. A row that appears on a side without a link is looked up here by
-- (entity, name, value), so linking an existing row costs one indexed statement, not a scan
-- of the golden records. Kept current by the batch that changes a key's fields (and by
-- steward resolutions); a deleted record has no keys.
CREATE TABLE mdsync.match_key (
  entity     text NOT NULL,
  golden_id  bigint NOT NULL REFERENCES mdsync.golden (id),
  name       text NOT NULL,     -- MatchKeySpec::name(): "website", "country+vat"
  value      text NOT NULL,     -- normalized; a composite key's parts joined by U+001F
  fuzzy      boolean NOT NULL,  -- a fuzzy key only suggests a possible_duplicate
  PRIMARY KEY (golden_id, fuzzy, name, value)
);
CREATE INDEX match_key_lookup ON mdsync.match_key (entity, name, value);

-- The match spec each entity's keys were built with. When the config's spec differs (a key
-- added, a normalizer changed), the engine rebuilds that entity's keys before it matches.
CREATE TABLE mdsync.match_spec (
  entity  text PRIMARY KEY,
  spec    text NOT NULL,
  built_at timestamptz NOT NULL DEFAULT now()
);

-- The records a possible_duplicate conflict names. While it is open, none of them is
-- inserted into the conflict's side (the row there may be one of them); the steward's
-- --link or --create plans their write-backs again.
CREATE TABLE mdsync.duplicate_candidate (
  conflict_id bigint NOT NULL REFERENCES mdsync.conflict (id),
  golden_id   bigint NOT NULL REFERENCES mdsync.golden (id),
  PRIMARY KEY (conflict_id, golden_id)
);
