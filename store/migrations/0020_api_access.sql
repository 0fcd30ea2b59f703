-- API access: hashed API keys with a scope, the audit of every write made through the API, and
-- the scope helper every scoped query uses.

-- A key is shown once when created; only its SHA-256 is kept (keys are 256-bit random tokens, so
-- a fast hash is enough: there is nothing to brute-force). `prefix` identifies a key in logs.
CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    prefix        text NOT NULL,
    key_sha256    text NOT NULL UNIQUE,
    name          text NOT NULL,
    scope_kind    text NOT NULL CHECK (scope_kind IN ('province', 'city', 'county', 'enterprise')),
    scope_id      text,                       -- region code or enterprise id; NULL for province
    rate_per_s    real NOT NULL DEFAULT 50 CHECK (rate_per_s > 0),
    burst         integer NOT NULL DEFAULT 200 CHECK (burst > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK ((scope_kind = 'province') = (scope_id IS NULL))
);

-- Every write made through the API, in the transaction of the write, with the key that made it.
CREATE TABLE api_write_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    key_id    bigint NOT NULL REFERENCES api_keys (id),
    action    text NOT NULL,                  -- e.g. enterprise.create, alert.acknowledge
    target    text NOT NULL,                  -- e.g. enterprise:E001, alert:42
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX api_write_audit_key ON api_write_audit (key_id, at);
CREATE INDEX api_write_audit_target ON api_write_audit (target, at);

-- The region and every region beneath it (GB/T 2260 tree walked through `parent`).
CREATE FUNCTION api_region_subtree(root text) RETURNS SETOF text LANGUAGE sql STABLE AS $$
    WITH RECURSIVE sub(code) AS (
        SELECT code FROM regions WHERE code = root
        UNION   -- not UNION ALL: ends even if a bad parent link made a cycle
        SELECT r.code FROM regions r JOIN sub ON r.parent = sub.code
    )
    SELECT code FROM sub
$$;
