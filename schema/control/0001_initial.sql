-- mdsync control store, version 1: golden records, crosswalk with per-side bases,
-- conflicts, audit, ruleset versions, capture bookkeeping and the write-back outbox.
-- Values are stored as jsonb objects {field: text-or-null}: text keeps decimals exact
-- and Unicode byte for byte, and NULL stays distinct from the empty string.

CREATE TABLE mdsync.ruleset (
  version     bigserial PRIMARY KEY,
  texts       jsonb NOT NULL,              -- rule file name -> file text, as applied
  applied_at  timestamptz NOT NULL DEFAULT now(),
  applied_by  text NOT NULL DEFAULT current_user
);

CREATE TABLE mdsync.golden (
  id          bigserial PRIMARY KEY,
  entity      text NOT NULL,
  "values"    jsonb NOT NULL DEFAULT '{}', -- field -> text or null
  provenance  jsonb NOT NULL DEFAULT '{}', -- unit -> {"side","steward","time_us"}
  deleted     boolean NOT NULL DEFAULT false,
  detached    text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX golden_entity ON mdsync.golden (entity, id);

-- One row per golden record and side that holds it: the side's row key and its base.
CREATE TABLE mdsync.crosswalk (
  entity      text NOT NULL,
  side        text NOT NULL,
  row_key     text NOT NULL,
  golden_id   bigint NOT NULL REFERENCES mdsync.golden (id),
  base        jsonb NOT NULL DEFAULT '{}',
  linked_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (entity, side, row_key),
  UNIQUE (golden_id, side)
);

CREATE TABLE mdsync.conflict (
  id              bigserial PRIMARY KEY,
  entity          text NOT NULL,
  golden_id       bigint REFERENCES mdsync.golden (id),  -- NULL: no golden record (yet)
  side            text NOT NULL,                         -- the side whose change opened it
  row_key         text NOT NULL,
  unit            text NOT NULL,                         -- field, group, or *record*
  kind            text NOT NULL CHECK (kind IN ('concurrent_edit', 'foreign_write',
                    'invalid_value', 'unauthorized_create', 'foreign_delete',
                    'possible_duplicate')),
  status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
  "values"        jsonb NOT NULL,                        -- who -> {field: value}
  attached        jsonb NOT NULL DEFAULT '[]',           -- later values [{side, source, values}]
  reason          text NOT NULL,
  source          text NOT NULL,                         -- "crm#42"
  ruleset_version bigint NOT NULL,
  opened_at       timestamptz NOT NULL DEFAULT now(),
  resolved_at     timestamptz,
  resolved_by     text,
  resolution      jsonb,
  note            text
);
CREATE INDEX conflict_open ON mdsync.conflict (entity, status);
CREATE UNIQUE INDEX conflict_one_open_per_unit ON mdsync.conflict (entity, golden_id, unit)
  WHERE status = 'open' AND golden_id IS NOT NULL;

CREATE TABLE mdsync.audit (
  id              bigserial PRIMARY KEY,
  at              timestamptz NOT NULL DEFAULT now(),
  entity          text NOT NULL,
  golden_id       bigint,
  unit            text NOT NULL,
  decision        text NOT NULL,
  old_value       jsonb,
  new_value       jsonb,
  proposed        jsonb,
  source          text NOT NULL,      -- "crm#42" or "steward:alice"
  rule            text NOT NULL,
  ruleset_version bigint NOT NULL,
  reason          text NOT NULL
);
CREATE INDEX audit_record ON mdsync.audit (entity, golden_id, id);

-- Capture rows already reconciled, by side, capture epoch (a side's capture table
-- identity, new if it is ever re-created) and sequence. Kept for a retention period after
-- the rows left the side, so a row delivered again is recognized and skipped.
CREATE TABLE mdsync.capture_done (
  side     text NOT NULL,
  epoch    text NOT NULL,
  seq      bigint NOT NULL,
  done_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (side, epoch, seq)
);
CREATE INDEX capture_done_age ON mdsync.capture_done (done_at);

-- Captured changes the engine could not reconcile (a NULL row key, a row the engine
-- failed on): kept whole, so nothing is lost, and shown by `mdsync status`.
CREATE TABLE mdsync.capture_error (
  id        bigserial PRIMARY KEY,
  side      text NOT NULL,
  epoch     text NOT NULL,
  seq       bigint NOT NULL,
  entity    text NOT NULL,
  op        text NOT NULL,
  row_key   text,
  "values"  jsonb NOT NULL,
  error     text NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mdsync.outbox (
  id          bigserial PRIMARY KEY,
  side        text NOT NULL,
  entity      text NOT NULL,
  golden_id   bigint NOT NULL REFERENCES mdsync.golden (id),
  kind        text NOT NULL CHECK (kind IN ('insert', 'update', 'delete')),
  row_key     text,                   -- update, delete: the side's key
  "values"    jsonb NOT NULL DEFAULT '{}',
  expected    jsonb NOT NULL DEFAULT '{}',
  status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'superseded', 'failed')),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  done_at     timestamptz
);
CREATE INDEX outbox_pending ON mdsync.outbox (side, id) WHERE status = 'pending';
CREATE INDEX outbox_record ON mdsync.outbox (golden_id) WHERE status = 'pending';

-- Per side health, for `mdsync status`.
CREATE TABLE mdsync.side_state (
  side                 text PRIMARY KEY,
  last_capture_at      timestamptz,
  last_writeback_at    timestamptz,
  last_error           text,
  last_error_at        timestamptz,
  consecutive_failures integer NOT NULL DEFAULT 0
);
