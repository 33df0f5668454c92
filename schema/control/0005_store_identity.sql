-- mdsync control store, version 5: the store's identity. One row: `store_id` names this
-- control store on every side it serves (`mdsync init` stamps it into the side's
-- mdsync.owner, and the engine refuses a side stamped by another store); `secret` is where
-- the engine's mark on its side sessions comes from: per side, hex(sha256(secret || ':' ||
-- side)), which the side's capture trigger knows only as its sha256. Two v4 uuids give 244
-- random bits from the server's strong random source, with nothing to install.
CREATE TABLE mdsync.store_identity (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  store_id uuid NOT NULL DEFAULT gen_random_uuid(),
  secret text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON mdsync.store_identity FROM PUBLIC;
INSERT INTO mdsync.store_identity DEFAULT VALUES;
