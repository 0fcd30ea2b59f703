-- Readings hypertable, dead letters.
-- The chunk interval is set by `yujing migrate` from the expected ingest rate (settings), so that
-- the open chunk's indexes stay in memory; retention drops whole chunks (store/retention.py).

CREATE TABLE readings (
    ts         timestamptz      NOT NULL,
    sensor     integer          NOT NULL,
    value      double precision NOT NULL,
    quality    smallint         NOT NULL DEFAULT 0,
    device_ts  timestamptz      -- the gateway's own time, kept where its clock was corrected
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 hour',
                         create_default_indexes => false);
-- One index: uniqueness per sensor and time is what makes replays idempotent.
CREATE UNIQUE INDEX readings_sensor_ts ON readings (sensor, ts DESC);
-- Clock-corrected rows are stored at receive time; a replay finds them by device time.
CREATE INDEX readings_sensor_device_ts ON readings (sensor, device_ts) WHERE device_ts IS NOT NULL;

CREATE TABLE dead_letters (
    id             bigserial,
    received_at    timestamptz NOT NULL,
    reason         text NOT NULL,
    detail         text NOT NULL,
    topic          text NOT NULL,
    enterprise     text,
    gateway        text,
    sensor         text,
    reading_index  integer,
    payload        bytea NOT NULL,     -- truncated to a bound
    PRIMARY KEY (id)
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE INDEX dead_letters_source ON dead_letters (enterprise, gateway, received_at);
