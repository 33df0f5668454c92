-- mdsync control store, version 8: stewards act through mdsync's functions.
--
-- A steward's role has no write privilege on the control store (`mdsync init` grants the roles
-- of the config's `roles`; README "Security"). A steward's decision on conflicts is recorded by
-- mdsync.request_steward_action, which stamps who asked with the session user (which the
-- control store authenticated: no argument, no environment variable can claim another name),
-- and the engine applies it at its next pass with the same code, and the same checks, as a
-- privileged `mdsync conflicts resolve`. Rules are applied the same way, through
-- mdsync.apply_ruleset.
CREATE TABLE mdsync.steward_action (
  id            bigserial PRIMARY KEY,
  kind          text NOT NULL CHECK (kind IN ('take', 'value', 'dismiss', 'link', 'create')),
  conflict_ids  bigint[] NOT NULL,  -- all or nothing
  take_side     text,               -- take: the side whose value is taken
  value         jsonb,              -- value: {field: value}; "" for a one-field unit
  link_target   text,               -- link: SIDE:ROWKEY or a golden id
  note          text,
  requested_by  text NOT NULL,      -- the session user, set by the function
  display_as    text,               -- the name the steward gave (--as)
  requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'refused')),
  done_at       timestamptz,
  result        text                -- the plans applied, or why it was refused
);
CREATE INDEX steward_action_pending ON mdsync.steward_action (id) WHERE status = 'pending';

-- Records a steward's decision for the engine to apply. Conflicts that are unknown or not open
-- refuse the whole request at once, naming each. SECURITY DEFINER with a fixed search_path:
-- the caller needs EXECUTE on this function and nothing on the tables.
CREATE FUNCTION mdsync.request_steward_action(kind text, conflict_ids bigint[], take_side text,
                                              value jsonb, link_target text, note text,
                                              display_as text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  problems text;
  action_id bigint;
BEGIN
  IF kind IS NULL OR kind NOT IN ('take', 'value', 'dismiss', 'link', 'create') THEN
    RAISE EXCEPTION 'steward action kind % is not one of take, value, dismiss, link, create',
      coalesce(kind, 'NULL');
  END IF;
  IF conflict_ids IS NULL OR cardinality(conflict_ids) = 0 THEN
    RAISE EXCEPTION 'a steward action names at least one conflict';
  END IF;
  IF kind IN ('link', 'create') AND cardinality(conflict_ids) <> 1 THEN
    RAISE EXCEPTION '--link and --create resolve one conflict at a time';
  END IF;
  SELECT string_agg(CASE WHEN c.id IS NULL THEN 'no conflict with id ' || i
                         ELSE 'conflict ' || i || ' is already ' || c.status END, '; ' ORDER BY i)
    INTO problems
    FROM unnest(conflict_ids) AS i LEFT JOIN mdsync.conflict c ON c.id = i
    WHERE c.id IS NULL OR c.status <> 'open';
  IF problems IS NOT NULL THEN
    RAISE EXCEPTION 'nothing was requested: %', problems;
  END IF;
  INSERT INTO mdsync.steward_action (kind, conflict_ids, take_side, value, link_target, note,
                                     requested_by, display_as)
    VALUES (kind, conflict_ids, take_side, value, link_target, note, session_user,
            nullif(display_as, ''))
    RETURNING id INTO action_id;
  PERFORM pg_notify('mdsync_steward', action_id::text);
  RETURN action_id;
END
$$;
REVOKE ALL ON FUNCTION mdsync.request_steward_action(text, bigint[], text, jsonb, text, text, text)
  FROM PUBLIC;

-- Stores checked rule files as a new ruleset version, unless the newest version holds the same
-- files; applied_by is the session user. `mdsync rules apply` checks the files before it calls
-- this, and the engine checks a stored ruleset again before it uses it (one that does not fit
-- the config never replaces the one in force), so a direct call cannot do more harm than a
-- refused version.
CREATE FUNCTION mdsync.apply_ruleset(rule_texts jsonb, OUT applied_version bigint,
                                     OUT created boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  newest record;
BEGIN
  IF rule_texts IS NULL OR jsonb_typeof(rule_texts) <> 'object' THEN
    RAISE EXCEPTION 'a ruleset is an object {file name: file text}';
  END IF;
  LOCK TABLE mdsync.ruleset IN EXCLUSIVE MODE;
  SELECT r.version AS v, r.texts = rule_texts AS same INTO newest
    FROM mdsync.ruleset r ORDER BY r.version DESC LIMIT 1;
  IF FOUND AND newest.same THEN
    applied_version := newest.v;
    created := false;
    RETURN;
  END IF;
  INSERT INTO mdsync.ruleset AS r (texts, applied_by) VALUES (rule_texts, session_user)
    RETURNING r.version INTO applied_version;
  created := true;
END
$$;
REVOKE ALL ON FUNCTION mdsync.apply_ruleset(jsonb) FROM PUBLIC;
