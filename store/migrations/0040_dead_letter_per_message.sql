-- Dead letters: one row per message (issue 10, 3b). The payload is kept once; the refused
-- readings are a bounded list of [index, sensor, reason(, note)] and their number is `refused`
-- (0 when the whole message was refused); `reasons` counts every refused reading per reason,
-- including those beyond the listed bound.
ALTER TABLE dead_letters
    ADD COLUMN refused  integer NOT NULL DEFAULT 0 CHECK (refused >= 0),
    ADD COLUMN readings jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN reasons  jsonb   NOT NULL DEFAULT '{}';
UPDATE dead_letters
   SET refused = 1,
       readings = jsonb_build_array(jsonb_build_array(reading_index, sensor, reason)),
       reasons = jsonb_build_object(reason, 1)
 WHERE reading_index IS NOT NULL;
ALTER TABLE dead_letters DROP COLUMN sensor, DROP COLUMN reading_index;

-- Dead letters beyond the per-gateway cap are not written as rows; their count is kept here
-- (one row per gateway and minute), so a flood costs a counter, never the count.
CREATE TABLE dead_letter_overflow (
    minute      timestamptz NOT NULL,
    enterprise  text        NOT NULL DEFAULT '',
    gateway     text        NOT NULL DEFAULT '',
    messages    bigint      NOT NULL DEFAULT 0,
    readings    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, enterprise, gateway)
);
