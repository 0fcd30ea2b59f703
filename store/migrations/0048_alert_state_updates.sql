-- Lifecycle changes the router does not tell (acknowledged, assigned, shelved, unshelved, closed,
-- …) are published on the gateways' MQTT alerts topic too (issue 10 §7). `told_version` is the
-- last version of the alert whose state the service has put into the outbox for the MQTT channels,
-- written in the same transaction as the outbox rows, so a restart neither loses nor repeats one.
ALTER TABLE alerts ADD COLUMN told_version integer NOT NULL DEFAULT 0;
UPDATE alerts SET told_version = version;
CREATE INDEX alerts_untold ON alerts (id) WHERE version > told_version;
