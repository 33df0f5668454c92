-- mdsync control store, version 12: the audit chain is linked once per transaction, not once
-- per audit row (issue 12). What a link is and what `mdsync audit verify` checks do not change
-- (0006_audit_chain.sql): the same content is hashed into the same chain, and a store that has
-- a chain is upgraded in place. Only how the links are made changes.
--
-- Under 0006 every audit row queued a deferred trigger event of its own, and at commit each
-- one locked mdsync.audit_head, inserted its link and updated the head: a batch of 100,000 rows
-- updated the head 100,000 times (more than half of the control store's time in an initial
-- sync). Now:
--
-- * An AFTER INSERT statement trigger on mdsync.audit (audit_chain_queue) reads the rows of the
--   statement from its transition table, in the order they were inserted, and records them as
--   one row of mdsync.audit_chain_pending: their ids, and the content of each one's future link
--   except for its chain_seq (computed set-based; the chain_seq is known only at commit). That
--   is one insert per statement, however many rows the statement inserted. Only rows that
--   went through this trigger are ever linked: a row inserted with the triggers off
--   (session_replication_role = replica) stays out of the chain, as before, and `verify` names
--   it.
-- * A deferred constraint trigger on the pending rows (audit_chain_link) links them at commit:
--   it takes every pending row of the transaction at once, locks the head, hashes the rows one
--   after the other in a tight loop (each hash covers the previous one, so this part cannot be
--   set-based), inserts all the links with one statement and updates the head once.
--
-- What it costs: per INSERT statement, the trigger's call and one insert (about what 0006
-- spent per row at commit); per row, the text of its content, one sha256 and its share of the
-- links' insert. So it pays with statements of many rows (tools/bench-audit-chain).
--
-- Why this is still correct:
-- * Commit order and deadlocks: the head's row lock is still taken by a deferred trigger at
--   commit, so it is still the transaction's last lock (see 0006: it only ever makes committers
--   wait for each other). The statement trigger takes no lock another writer could wait for: it
--   inserts a row only its own transaction can see.
-- * Savepoints: PostgreSQL discards the trigger events a rolled-back subtransaction queued and
--   rolls back its rows, so a pending row and its event share the fate of the audit rows they
--   stand for: the rows of a rolled-back savepoint are never linked, those of a released one
--   are. A link made inside a subtransaction that is rolled back (SET CONSTRAINTS ...
--   IMMEDIATE in a savepoint) is rolled back together with the deletion of its pending rows,
--   and PostgreSQL marks the events it fired there as not fired (trigger.c,
--   AfterTriggerEndSubXact).
-- * One event per transaction: only a transaction's first pending row (the leader) queues the
--   deferred event (the trigger's WHEN, which PostgreSQL evaluates at insert time). Later rows
--   wait behind it: the leader's event links every pending row of the transaction from the
--   leader's batch on. A row is a follower only if the pending row of the transaction's
--   previous statement (named by mdsync.audit_chain_batch, a transaction-local hint) is still
--   there, as the statement itself sees it: then an unfired leader event covers both. A stale,
--   lost or forged hint can only make a row a leader, and a leader whose rows an earlier
--   leader's event has linked finds its own row gone and does nothing; so no setting a session
--   can make keeps a row from being linked. Events fire in the order they were queued, at
--   commit and at SET CONSTRAINTS ... IMMEDIATE (trigger.c, AfterTriggerFireDeferred and
--   AfterTriggerSetState), so the links follow the order the rows were inserted in.
-- * SET CONSTRAINTS ALL (or mdsync.audit_chain_link) IMMEDIATE: the pending rows are linked
--   then, and each later statement's rows at the statement's end, each time under the head's
--   lock (held to commit) and with the head updated, so the chain stays whole. The head is
--   found by the tuple id its previous update left (as in 0006), and a leader's range starts
--   at its own row, so a transaction of many such statements stays linear.
-- * Privileges: both trigger functions are SECURITY DEFINER with a fixed search_path, and no
--   role gets any privilege on mdsync.audit_chain_pending (init's grants do not list it): no
--   role can queue a row to be linked, take one off the queue or call the linking. Pending rows
--   are only ever a transaction's own (xact): another transaction's are invisible until it
--   commits, and by then they are linked and gone.
--
-- The content of a link is, as in 0006, the canonical text of a jsonb array: chain_seq, id, at
-- as microseconds since the epoch, entity, golden_id, unit, decision, old_value, new_value,
-- proposed (each jsonb as its text), source, rule, ruleset_version, reason. The statement
-- trigger computes the array without chain_seq (mdsync.audit_chain_tail); at commit the link's
-- content is '[' || chain_seq || ', ' followed by that text without its '[': jsonb writes an
-- array as '[' and its elements joined by ', ' and ']', and a bigint as its digits, so this is
-- byte for byte the text of the whole array, which `verify` recomputes with jsonb_build_array.
-- A migration that adds a column to mdsync.audit must extend mdsync.audit_chain_tail and
-- engine/store/src/audit_chain.cpp.

-- Unlogged: a row lives only inside its transaction (inserted by an audit insert, deleted at
-- commit), so there is nothing to recover after a crash and no reason to write it to the WAL.
-- Its arrays are stored uncompressed: they are written once and read once.
CREATE UNLOGGED TABLE mdsync.audit_chain_pending (
  xact    xid8 NOT NULL DEFAULT pg_current_xact_id(),  -- the (top-level) transaction
  batch   bigserial,                 -- statement order within the transaction
  ids     bigint[] NOT NULL,         -- mdsync.audit ids, in insertion order
  tails   text[] NOT NULL,           -- mdsync.audit_chain_tail of each
  leader  boolean NOT NULL,          -- its event links the transaction's pending rows
  PRIMARY KEY (xact, batch)
);
ALTER TABLE mdsync.audit_chain_pending
  ALTER COLUMN ids SET STORAGE EXTERNAL, ALTER COLUMN tails SET STORAGE EXTERNAL;

-- The content of an audit row's link without its chain_seq (see above). An SQL body, so that
-- PostgreSQL inlines it into the statement trigger's query and resolves its names at creation.
CREATE FUNCTION mdsync.audit_chain_tail(a mdsync.audit) RETURNS text
LANGUAGE sql STABLE
RETURN jsonb_build_array(
  a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.entity, a.golden_id, a.unit,
  a.decision, a.old_value::text, a.new_value::text, a.proposed::text, a.source, a.rule,
  a.ruleset_version, a.reason)::text;
REVOKE ALL ON FUNCTION mdsync.audit_chain_tail(mdsync.audit) FROM PUBLIC;

-- The statement trigger on mdsync.audit (under 0006's function name): queues the statement's
-- rows; `added` is its transition table. Here and in the leader's trigger the lookups in
-- mdsync.audit_chain_pending are index probes whatever its statistics say (enable_seqscan off):
-- the table holds the rows of transactions in flight, which no statistics describe, and a scan
-- of them per statement would make a transaction of many statements quadratic. The insert
-- takes no parameter (the hint is read in it), so its plan is made once per session, not again
-- at each statement.
CREATE OR REPLACE FUNCTION mdsync.audit_chain_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off AS $$
DECLARE
  queued bigint;
BEGIN
  INSERT INTO mdsync.audit_chain_pending (ids, tails, leader)
    SELECT array_agg(a.id), array_agg(mdsync.audit_chain_tail(a)),
           NOT EXISTS (
             SELECT FROM mdsync.audit_chain_pending p
             WHERE p.xact = pg_current_xact_id()
               AND p.batch = CASE WHEN current_setting('mdsync.audit_chain_batch', true)
                                       ~ '^[0-9]{1,18}$'
                                  THEN current_setting('mdsync.audit_chain_batch', true)::bigint
                             END)
    FROM added a HAVING count(*) > 0
    RETURNING batch INTO queued;
  IF queued IS NOT NULL THEN
    PERFORM set_config('mdsync.audit_chain_batch', queued::text, true);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mdsync.audit_chain_link() FROM PUBLIC;

-- The leader's deferred trigger: links the transaction's pending rows from the leader on (in
-- statement order, and in insertion order within a statement): one head lock, one hash per row,
-- one insert of every link, one head update. Nothing if an earlier leader's event has linked
-- them (the leader's own row is gone). The head is found by the tuple id its previous update
-- left (a hint, transaction-local: a wrong or stale one finds no row and the head is looked
-- up), not by scanning past every version this transaction has made of it. Its statements are
-- planned once per session (force_generic_plan) and never compiled by jit, whose compile time
-- for a large transaction's plans would cost more than it saves.
CREATE FUNCTION mdsync.audit_chain_link_pending() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET jit = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  head_tid  tid;
  head_seq  bigint;
  head_hash bytea;
  h         bytea;
  linked    bigint := 0;
  pending   record;
  ids       bigint[];
  tails     text[];
  link_ids  bigint[] := '{}';
  hashes    bytea[] := '{}';
BEGIN
  IF NOT EXISTS (SELECT FROM mdsync.audit_chain_pending p
                 WHERE p.xact = NEW.xact AND p.batch = NEW.batch) THEN
    RETURN NULL;
  END IF;
  SELECT hd.ctid, hd.seq, hd.hash INTO head_tid, head_seq, head_hash FROM mdsync.audit_head hd
    WHERE hd.ctid = nullif(current_setting('mdsync.audit_head_tid', true), '')::tid FOR UPDATE;
  IF NOT FOUND THEN
    SELECT hd.ctid, hd.seq, hd.hash INTO STRICT head_tid, head_seq, head_hash
      FROM mdsync.audit_head hd FOR UPDATE;
  END IF;
  h := head_hash;
  FOR pending IN
    WITH taken AS (
      DELETE FROM mdsync.audit_chain_pending p WHERE p.xact = NEW.xact AND p.batch >= NEW.batch
      RETURNING p.batch, p.ids, p.tails)
    SELECT taken.ids, taken.tails FROM taken ORDER BY taken.batch
  LOOP
    ids := pending.ids;      -- local arrays: subscripting them is O(1)
    tails := pending.tails;
    FOR i IN 1 .. cardinality(ids) LOOP
      linked := linked + 1;
      h := sha256(h || convert_to('[' || (head_seq + linked) || ', ' || substr(tails[i], 2),
                                  'UTF8'));
      link_ids[linked] := ids[i];
      hashes[linked] := h;
    END LOOP;
  END LOOP;
  INSERT INTO mdsync.audit_chain (chain_seq, audit_id, prev_hash, hash)
    SELECT head_seq + l.k, l.id, coalesce(lag(l.hash) OVER (ORDER BY l.k), head_hash), l.hash
    FROM unnest(link_ids, hashes) WITH ORDINALITY l(id, hash, k);
  UPDATE mdsync.audit_head hd SET seq = head_seq + linked, hash = h
    WHERE hd.ctid = head_tid RETURNING hd.ctid INTO STRICT head_tid;
  PERFORM set_config('mdsync.audit_head_tid', head_tid::text, true);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mdsync.audit_chain_link_pending() FROM PUBLIC;

-- 0006's one-row form (its migration linked the rows of older stores with it): the row is
-- queued as an insert queues it, and linked at commit.
CREATE OR REPLACE FUNCTION mdsync.audit_chain_append(a mdsync.audit) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO mdsync.audit_chain_pending (ids, tails, leader)
    VALUES (ARRAY[a.id], ARRAY[mdsync.audit_chain_tail(a)], true);
END
$$;
REVOKE ALL ON FUNCTION mdsync.audit_chain_append(mdsync.audit) FROM PUBLIC;

-- In place of 0006's trigger of one event per row. Dropping it takes the table's exclusive
-- lock, so a transaction that queued events under it commits (and links its rows) first.
DROP TRIGGER audit_chain_link ON mdsync.audit;
CREATE TRIGGER audit_chain_queue AFTER INSERT ON mdsync.audit
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION mdsync.audit_chain_link();
CREATE CONSTRAINT TRIGGER audit_chain_link AFTER INSERT ON mdsync.audit_chain_pending
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.leader)
  EXECUTE FUNCTION mdsync.audit_chain_link_pending();
