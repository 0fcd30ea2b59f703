-- One incident per place and cause (issue 13 §7). An alert's identity is now its key:
--   zone:{zone}:{kind}     value findings of the sensors of a zone (limit, rate, anomaly, …)
--   sensor:{id}:{kind}     the same for a sensor without a zone
--   sensor:{id}:health     findings on the instrument itself (fault, stuck, jump, drift, nodata, under_range)
--   gateway:{id}:{rule}, zone:{id}:{rule}   gateway and zone rules, as before
-- and `evidence` lists its contributing findings (alerts/incidents.py).
ALTER TABLE alerts ADD COLUMN evidence jsonb NOT NULL DEFAULT '[]';
-- contributing findings left out of a full list of 64 (alerts.incidents.MAX_EVIDENCE): counted, never silent
ALTER TABLE alerts ADD COLUMN evidence_dropped integer NOT NULL DEFAULT 0;

-- Each existing alert's own state is its one piece of evidence.
UPDATE alerts a SET evidence = jsonb_build_array(jsonb_build_object(
    'subject_kind', a.subject_kind, 'subject', a.subject, 'code', coalesce(a.labels ->> 'subject_code', ''),
    'rule', a.rule, 'active', a.active, 'event', a.finding_event, 'severity', a.severity, 'grade', a.base_grade,
    'grading_rule', a.grading_rule, 'value', a.value, 'setpoint', a.setpoint, 'ts_us', a.finding_ts_us,
    'first_us', a.started_us, 'raised_us', a.raised_us));

-- Open sensor alerts take their incident key, unless two of them would share one: those keep
-- their old key and end as they are (their clears still reach them only through an operator).
WITH k AS (
    SELECT id, CASE
        WHEN split_part(rule, '.', 1) IN ('fault', 'stuck', 'jump', 'drift', 'nodata', 'under_range')
            THEN 'sensor:' || subject || ':health'
        WHEN kind = '' THEN alert_key
        WHEN zone IS NOT NULL AND zone <> 0 THEN 'zone:' || zone || ':' || kind
        ELSE 'sensor:' || subject || ':' || kind END AS key
    FROM alerts WHERE subject_kind = 1 AND state <> 'closed'
), single AS (
    SELECT key FROM k GROUP BY key HAVING count(*) = 1
)
UPDATE alerts a SET alert_key = k.key, labels = a.labels || jsonb_build_object('alert_key', k.key)
FROM k JOIN single USING (key) WHERE a.id = k.id;

DROP INDEX alerts_open_identity;
DROP INDEX alerts_identity_latest;
-- At most one open alert per incident key; a raise after close opens a new incident.
CREATE UNIQUE INDEX alerts_open_key ON alerts (alert_key) WHERE state <> 'closed';
CREATE INDEX alerts_key_latest ON alerts (alert_key, id DESC);
