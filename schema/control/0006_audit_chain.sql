-- mdsync control store, version 6: the audit trail is append-only and hash-chained.
--
-- UPDATE, DELETE and TRUNCATE of mdsync.audit (and of its chain) are refused by triggers,
-- whoever asks. Every audit row is linked into a chain when its transaction commits:
-- mdsync.audit_chain gives it the next chain_seq, the previous link's hash (prev_hash) and
-- hash = sha256(prev_hash || content), where content covers every column of the row.
-- mdsync.audit_head holds the last link (seq, hash): its row lock serializes the linking of
-- concurrent transactions, and it shows rows removed from the end of the chain.
-- `mdsync audit verify` recomputes the chain from the rows alone (engine/store audit_chain).
--
-- Why the chain is a table of its own, linked at commit (a deferred constraint trigger), and
-- not columns the audit row gets when it is inserted: linking takes the head's row lock,
-- held until commit. Taken at the first audit insert, a batch would hold it while it goes on
-- to lock other records, and a steward's resolution holding one of those records and
-- waiting for the head would deadlock with it. Taken at commit, it is the transaction's last
-- lock, so it only ever makes committers wait for each other. The chain's order is therefore
-- commit order, not id order (ids are taken from a sequence at insert time).
--
-- The content of a link is the canonical text of a jsonb array (jsonb's text form does not
-- depend on session settings): chain_seq, id, at as microseconds since the epoch, entity,
-- golden_id, unit, decision, old_value, new_value, proposed (each jsonb as its text, so
-- SQL NULL and JSON null differ), source, rule, ruleset_version, reason. A migration that
-- adds a column to mdsync.audit must extend it here and in engine/store/src/audit_chain.cpp.

CREATE TABLE mdsync.audit_chain (
  chain_seq  bigint PRIMARY KEY,     -- 1, 2, 3, ... in commit order
  audit_id   bigint NOT NULL,        -- mdsync.audit.id (no foreign key: a deleted row must show)
  prev_hash  bytea NOT NULL,         -- the previous link's hash; 32 zero bytes for the first
  hash       bytea NOT NULL
);

CREATE TABLE mdsync.audit_head (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq        bigint NOT NULL,        -- chain_seq of the last link (0: no rows yet)
  hash       bytea NOT NULL          -- its hash
);
INSERT INTO mdsync.audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- Appends one audit row to the chain. Not callable by other roles (a forged call would
-- append a link for a row that is not there); the trigger below runs it as its owner, with
-- a safe search_path. A transaction that links many rows updates the head once per row: each
-- update finds the head by the tuple id the previous one left (a hint, transaction-local; a
-- wrong or stale hint finds no row and the head is looked up), not by scanning past every
-- version the transaction has made of it, which would make a large batch quadratic.
CREATE FUNCTION mdsync.audit_chain_append(a mdsync.audit) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  head_tid  tid;
  head_seq  bigint;
  head_hash bytea;
  next_hash bytea;
BEGIN
  SELECT h.ctid, h.seq, h.hash INTO head_tid, head_seq, head_hash FROM mdsync.audit_head h
    WHERE h.ctid = nullif(current_setting('mdsync.audit_head_tid', true), '')::tid FOR UPDATE;
  IF NOT FOUND THEN
    SELECT h.ctid, h.seq, h.hash INTO STRICT head_tid, head_seq, head_hash
      FROM mdsync.audit_head h FOR UPDATE;
  END IF;
  next_hash := sha256(head_hash || convert_to(jsonb_build_array(
    head_seq + 1, a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.entity, a.golden_id,
    a.unit, a.decision, a.old_value::text, a.new_value::text, a.proposed::text, a.source,
    a.rule, a.ruleset_version, a.reason)::text, 'UTF8'));
  INSERT INTO mdsync.audit_chain (chain_seq, audit_id, prev_hash, hash)
    VALUES (head_seq + 1, a.id, head_hash, next_hash);
  UPDATE mdsync.audit_head h SET seq = head_seq + 1, hash = next_hash WHERE h.ctid = head_tid
    RETURNING h.ctid INTO STRICT head_tid;
  PERFORM set_config('mdsync.audit_head_tid', head_tid::text, true);
END
$$;
REVOKE ALL ON FUNCTION mdsync.audit_chain_append(mdsync.audit) FROM PUBLIC;

-- SECURITY DEFINER: a role that may only INSERT and SELECT mdsync.audit still links its rows
-- (it needs no privilege on audit_chain or audit_head).
CREATE FUNCTION mdsync.audit_chain_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM mdsync.audit_chain_append(NEW);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mdsync.audit_chain_link() FROM PUBLIC;

CREATE FUNCTION mdsync.audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION '%.% is append-only: % is refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING HINT = 'The audit trail is evidence: rows are only ever added. '
                 '`mdsync audit verify` checks that none was changed or removed.';
END
$$;

-- The rows that exist now, in id order (before the triggers, which would link them again).
DO $$
DECLARE
  r mdsync.audit;
BEGIN
  FOR r IN SELECT * FROM mdsync.audit ORDER BY id LOOP
    PERFORM mdsync.audit_chain_append(r);
  END LOOP;
END
$$;

CREATE CONSTRAINT TRIGGER audit_chain_link AFTER INSERT ON mdsync.audit
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mdsync.audit_chain_link();

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON mdsync.audit
  FOR EACH ROW EXECUTE FUNCTION mdsync.audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON mdsync.audit
  FOR EACH STATEMENT EXECUTE FUNCTION mdsync.audit_refuse_change();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON mdsync.audit_chain
  FOR EACH ROW EXECUTE FUNCTION mdsync.audit_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON mdsync.audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION mdsync.audit_refuse_change();
