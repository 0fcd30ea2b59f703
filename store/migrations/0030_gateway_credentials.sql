-- Gateway MQTT credentials for the broker's authenticated listener (deploy/mosquitto/yujing.conf).
-- The broker's password file and ACL file are rendered from this table (store/broker_files.py).

-- One credential per gateway. The password is shown once when issued or rotated; only its
-- Mosquitto hash is kept ($7$: PBKDF2-SHA512, the format of Mosquitto 2.0's password file), so
-- the rendered password file is a plain copy of this column. `username` is {enterprise}.{gateway}
-- (also the client id the broker forces); UNIQUE because ids may contain '.', so two different
-- pairs could spell the same name: the second one is refused instead of sharing a login.
CREATE TABLE gateway_credentials (
    gateway        integer PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    username       text NOT NULL UNIQUE CHECK (username !~ '[[:space:]:]'),
    password_hash  text NOT NULL CHECK (password_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    rotated_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- Bumped by every change that alters the broker files: a credential issued, rotated, revoked or
-- removed, a gateway or enterprise (de)activated. The service polls it and re-renders on change.
CREATE TABLE broker_auth_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL
);
INSERT INTO broker_auth_version VALUES (true, 1);

CREATE FUNCTION broker_auth_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE broker_auth_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER gateway_credentials_broker_auth
    AFTER INSERT OR UPDATE OR DELETE ON gateway_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION broker_auth_bump();
-- Row triggers with WHEN: the liveness updates of `gateways` (online, last_seen_at …) cost nothing.
CREATE TRIGGER gateways_broker_auth
    AFTER UPDATE OF active ON gateways
    FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active) EXECUTE FUNCTION broker_auth_bump();
CREATE TRIGGER enterprises_broker_auth
    AFTER UPDATE OF active ON enterprises
    FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active) EXECUTE FUNCTION broker_auth_bump();
