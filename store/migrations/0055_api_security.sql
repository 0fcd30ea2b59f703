-- API security (issue 12): the province administrator, live-session caps, and the allow-list of
-- hosts that contact webhooks and robots may point at.

-- Only a province key can be an administrator: it alone creates regions and enterprises (ids
-- that are unique province-wide), changes a region's parent or an enterprise's region (both
-- move objects between other keys' scopes), deletes regions and administers the webhook hosts.
ALTER TABLE api_keys
    ADD COLUMN admin boolean NOT NULL DEFAULT false,
    ADD COLUMN live_sessions integer NOT NULL DEFAULT 20 CHECK (live_sessions >= 0),
    ADD CONSTRAINT api_keys_admin_is_province CHECK (NOT admin OR scope_kind = 'province');

-- Hosts that escalation may send to (contacts' webhook and robot URLs). A contact naming any
-- other host is stored, its host proposed here, and nothing is sent to it until a province
-- administrator approves the host.
CREATE TABLE webhook_hosts (
    host         text PRIMARY KEY CHECK (host = lower(host) AND length(host) BETWEEN 1 AND 253),
    state        text NOT NULL DEFAULT 'proposed' CHECK (state IN ('proposed', 'approved')),
    proposed_by  text,                      -- api-key:ID:NAME, or cli
    proposed_at  timestamptz NOT NULL DEFAULT now(),
    approved_by  text,
    approved_at  timestamptz
);
