-- Minute and hour rollups of readings, maintained by the rollup worker (store/rollups.py) from
-- `rollup_dirty`, off the write path. avg = sum / count so that coarser buckets re-aggregate
-- exactly; last_value is the value at last_ts (the newest reading of the bucket).
CREATE TABLE readings_1m (
    bucket      timestamptz      NOT NULL,
    sensor      integer          NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    sum         double precision NOT NULL,
    count       integer          NOT NULL,
    last_value  double precision NOT NULL,
    last_ts     timestamptz      NOT NULL,
    PRIMARY KEY (sensor, bucket)
);
SELECT create_hypertable('readings_1m', 'bucket', chunk_time_interval => interval '7 days',
                         create_default_indexes => false);
CREATE INDEX readings_1m_bucket ON readings_1m (bucket);

CREATE TABLE readings_1h (
    bucket      timestamptz      NOT NULL,
    sensor      integer          NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    sum         double precision NOT NULL,
    count       integer          NOT NULL,
    last_value  double precision NOT NULL,
    last_ts     timestamptz      NOT NULL,
    PRIMARY KEY (sensor, bucket)
);
SELECT create_hypertable('readings_1h', 'bucket', chunk_time_interval => interval '90 days',
                         create_default_indexes => false);
CREATE INDEX readings_1h_bucket ON readings_1h (bucket);

-- The rollup worker recomputes whole minutes across all sensors; the only index on readings is
-- (sensor, ts), so without this a minute's recompute would scan its whole chunk. BRIN costs the
-- writer almost nothing (rows arrive in time order within a chunk).
CREATE INDEX readings_ts_brin ON readings USING brin (ts) WITH (pages_per_range = 32);

-- Minutes taken from rollup_dirty by the rollup worker and not yet recomputed: the claim commits
-- at once (so writers are held back only for milliseconds) and a crash before the recompute
-- leaves the minutes here for the next pass.
CREATE TABLE rollup_claimed (
    bucket  timestamptz PRIMARY KEY
);
