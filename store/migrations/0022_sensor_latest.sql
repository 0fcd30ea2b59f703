-- The newest stored reading of each sensor, so that "latest values" never walk the readings
-- hypertable. Maintained off the write path by the rollup worker (store/rollups.py): each minute
-- it recomputes also raises the row of every sensor seen in that minute, and only forward — a
-- late or backfilled reading never replaces a newer one. One row per sensor, updated in place:
-- no index covers ts/value/quality, so the updates are HOT and the table stays small.
CREATE TABLE sensor_latest (
    sensor   integer          PRIMARY KEY,
    ts       timestamptz      NOT NULL,
    value    double precision NOT NULL,
    quality  smallint         NOT NULL
) WITH (fillfactor = 50);

-- Existing data, once: one index probe per sensor (the newest chunk that holds it).
INSERT INTO sensor_latest (sensor, ts, value, quality)
SELECT s.id, r.ts, r.value, r.quality
FROM sensors s
CROSS JOIN LATERAL (SELECT ts, value, quality FROM readings WHERE sensor = s.id ORDER BY ts DESC LIMIT 1) r;
