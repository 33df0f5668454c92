-- mdsync control store, version 14: `rules apply` wakes a running service.
--
-- The service LISTENs on channel mdsync_steward (README "Waking up"): a steward's
-- request already NOTIFYs it (0008), and privileged steward commands do in their own
-- transaction. mdsync.apply_ruleset now does too when it stores a new version, so the service
-- loads and checks the new ruleset at once instead of at its next poll. The payload is
-- `ruleset:VERSION`. NOTIFY is sent at commit, and not at all if the caller rolls back.
-- CREATE OR REPLACE keeps the function's owner and grants.
CREATE OR REPLACE FUNCTION mdsync.apply_ruleset(rule_texts jsonb, OUT applied_version bigint,
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
  PERFORM pg_notify('mdsync_steward', 'ruleset:' || applied_version);
END
$$;
