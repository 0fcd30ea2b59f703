-- Minutes whose raw readings changed since the rollups last covered them. The writer adds the
-- distinct minutes of each batch in the same transaction (a few rows per batch, whatever its
-- size, late backfill included); the rollup worker recomputes those minutes off the write path
-- and deletes what it covered. A crash can therefore never leave a rollup silently stale.
CREATE TABLE rollup_dirty (
    bucket  timestamptz PRIMARY KEY    -- minute (time_bucket('1 minute', ts))
);
