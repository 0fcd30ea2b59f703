-- Alerts: graded alerts with a durable lifecycle, the hash-chained audit journal, routing groups,
-- silences, the notification outbox, and the colours of places (四色图).
-- Times the alerts stage decides on come from its injected clock and are stored as µs since the
-- epoch (`*_us bigint`); `recorded_at` columns are the database's own clock, for forensics only.
-- Only the alerts package writes these tables (alerts.transitions for operators); see alerts/README.

CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    alert_key         text     NOT NULL,          -- "{subject_kind}:{subject}:{rule}", the identity
    subject_kind      smallint NOT NULL CHECK (subject_kind BETWEEN 1 AND 3),   -- sensor|gateway|zone
    subject           integer  NOT NULL,          -- dense registry id
    rule              text     NOT NULL,
    -- denormalised from the registry when the alert opened (routing, places, rendering)
    enterprise        text,
    region            text,
    regions           text[]   NOT NULL DEFAULT '{}',   -- region chain, the region itself first
    industry          text,
    kind              text     NOT NULL DEFAULT '',
    gateway           integer,
    zone              integer,
    labels            jsonb    NOT NULL,
    grading_rule      text,                       -- name of the policy rule that graded it
    -- lifecycle
    state             text     NOT NULL CHECK (state IN ('firing', 'acknowledged', 'latched', 'resolved', 'closed')),
    active            boolean  NOT NULL,          -- the condition holds, per the last finding
    grade             smallint NOT NULL CHECK (grade BETWEEN 1 AND 4),    -- warning colour, 4 = red
    base_grade        smallint NOT NULL CHECK (base_grade BETWEEN 1 AND 4),  -- before upgrades
    peak_grade        smallint NOT NULL CHECK (peak_grade BETWEEN 1 AND 4),
    upgraded          text,                       -- persist | spread when an upgrade applies
    severity          smallint NOT NULL,
    finding_event     smallint NOT NULL,
    finding_ts_us     bigint   NOT NULL,          -- time of the last finding applied (replay guard)
    value             double precision,
    setpoint          double precision,
    peak_value        double precision,
    started_us        bigint   NOT NULL,
    grade_since_us    bigint   NOT NULL,
    unacked_since_us  bigint,                     -- escalation clock; NULL once acknowledged
    cleared_us        bigint,
    resolved_us       bigint,
    closed_us         bigint,
    acked_us          bigint,
    acked_by          text,
    assignee          text,
    shelved_until_us  bigint,
    shelved_by        text,
    shelve_reason     text,
    flapping          boolean  NOT NULL DEFAULT false,
    flap_changes_us   bigint[] NOT NULL DEFAULT '{}',
    reopened          integer  NOT NULL DEFAULT 0,
    escalation_step   smallint NOT NULL DEFAULT 0,
    timer_due_us      bigint,                     -- next time the service must look at it
    version           integer  NOT NULL DEFAULT 1,
    notify_version    integer  NOT NULL DEFAULT 1,  -- version of the last change worth notifying
    routed_version    integer  NOT NULL DEFAULT 0,  -- notify_version already put into groups
    updated_us        bigint   NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one open alert per identity; a raise after close opens a new incident.
CREATE UNIQUE INDEX alerts_open_identity ON alerts (subject_kind, subject, rule) WHERE state <> 'closed';
CREATE INDEX alerts_identity_latest ON alerts (subject_kind, subject, rule, id DESC);
CREATE INDEX alerts_timer ON alerts (timer_due_us) WHERE timer_due_us IS NOT NULL AND state <> 'closed';
CREATE INDEX alerts_unrouted ON alerts (id) WHERE notify_version > routed_version;
CREATE INDEX alerts_open_enterprise ON alerts (enterprise, grade) WHERE state IN ('firing', 'acknowledged', 'latched');
CREATE INDEX alerts_open_zone ON alerts (zone, rule) WHERE state <> 'closed';
CREATE INDEX alerts_started ON alerts (started_us DESC);

-- Append-only journal of every transition, acknowledgement, comment, assignment and silence
-- change, hash-chained: hash = sha256(prev_hash | seq | at_us | alert_id | alert_key | version |
-- action | actor | detail). `detail` is stored as the exact canonical JSON text that was hashed.
CREATE TABLE alert_journal (
    seq          bigint  PRIMARY KEY,
    at_us        bigint  NOT NULL,
    alert_id     bigint,
    alert_key    text    NOT NULL,
    version      integer NOT NULL,
    action       text    NOT NULL,
    actor        text    NOT NULL,
    detail       text    NOT NULL,
    prev_hash    text    NOT NULL,
    hash         text    NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_journal_alert ON alert_journal (alert_id, seq);

-- The chain head, written in the same transaction as each append. It catches a tail cut by a
-- plain DELETE; the anchor file (audit.anchor_dir) catches one made together with this row.
CREATE TABLE alert_journal_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq        bigint NOT NULL,
    hash       text   NOT NULL
);
INSERT INTO alert_journal_head VALUES (true, 0, repeat('0', 64));

CREATE FUNCTION alert_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_journal is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER alert_journal_no_change BEFORE UPDATE OR DELETE ON alert_journal
    FOR EACH ROW EXECUTE FUNCTION alert_journal_append_only();
CREATE TRIGGER alert_journal_no_truncate BEFORE TRUNCATE ON alert_journal
    FOR EACH STATEMENT EXECUTE FUNCTION alert_journal_append_only();

-- Silences: label matchers with a time range, creator and reason; expiring one sets ends_us.
CREATE TABLE alert_silences (
    id          bigserial PRIMARY KEY,
    matchers    jsonb  NOT NULL,
    starts_us   bigint NOT NULL,
    ends_us     bigint NOT NULL,
    creator     text   NOT NULL,
    reason      text   NOT NULL,
    created_us  bigint NOT NULL,
    updated_us  bigint NOT NULL,
    expired_by  text,
    version     integer NOT NULL DEFAULT 1,
    CHECK (ends_us >= starts_us)
);
CREATE INDEX alert_silences_ends ON alert_silences (ends_us);

-- Aggregation groups of the routing tree (one per route, receiver and group_by values) and the
-- alert versions each has notified. Durable, so a restart neither loses nor repeats a flush.
CREATE TABLE alert_groups (
    id                bigserial PRIMARY KEY,
    group_key         text   NOT NULL UNIQUE,
    route             text   NOT NULL,
    receiver          text   NOT NULL,
    labels            jsonb  NOT NULL,
    created_us        bigint NOT NULL,
    pending_since_us  bigint,
    urgent            boolean NOT NULL DEFAULT false,
    last_flush_us     bigint,
    next_due_us       bigint,
    flushes           integer NOT NULL DEFAULT 0
);
CREATE INDEX alert_groups_due ON alert_groups (next_due_us) WHERE next_due_us IS NOT NULL;

CREATE TABLE alert_group_members (
    group_id          bigint  NOT NULL REFERENCES alert_groups (id) ON DELETE CASCADE,
    alert_id          bigint  NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    notified_version  integer NOT NULL DEFAULT 0,
    notified_grade    smallint NOT NULL DEFAULT 0,
    notified_state    text,
    PRIMARY KEY (group_id, alert_id)
);
CREATE INDEX alert_group_members_alert ON alert_group_members (alert_id);

-- Transactional outbox: a notification row is written in the transaction that decided it and
-- delivered at least once by a worker holding a lease; the idempotency key is stable.
CREATE TABLE alert_outbox (
    id               bigserial PRIMARY KEY,
    idempotency_key  text   NOT NULL UNIQUE,
    receiver         text   NOT NULL,
    channel          text   NOT NULL,             -- channel name in the receiver, or contact:<role>
    channel_type     text   NOT NULL CHECK (channel_type IN ('webhook', 'dingtalk', 'wecom', 'email', 'mqtt')),
    target           jsonb,                       -- contact address for registry contacts
    payload          jsonb  NOT NULL,
    alert_ids        bigint[] NOT NULL,
    created_us       bigint NOT NULL,
    state            text   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_us  bigint NOT NULL,
    lease_until_us   bigint,
    lease_owner      text,
    delivered_us     bigint,
    last_error       text,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_us) WHERE state = 'pending';

-- Colours of places. Warning colour (live, from open alerts) and risk colour (assessed, from the
-- registry) are kept apart; the dynamic colour the 四色图 shows by default is the higher of the two.
CREATE FUNCTION alert_colour_rank(colour text) RETURNS smallint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE colour WHEN 'blue' THEN 1 WHEN 'yellow' THEN 2 WHEN 'orange' THEN 3 WHEN 'red' THEN 4 END::smallint
$$;
CREATE FUNCTION alert_colour_name(rank smallint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE rank WHEN 1 THEN 'blue' WHEN 2 THEN 'yellow' WHEN 3 THEN 'orange' WHEN 4 THEN 'red' END
$$;

CREATE VIEW alert_enterprise_colours AS
SELECT e.id AS enterprise, e.name, e.region, e.industry,
       e.risk_colour AS assessed,
       alert_colour_name(live.grade) AS live,
       alert_colour_name(GREATEST(alert_colour_rank(e.risk_colour), live.grade)) AS dynamic,
       coalesce(live.n, 0) AS open_alerts
FROM enterprises e
LEFT JOIN (SELECT enterprise, max(grade)::smallint AS grade, count(*) AS n
           FROM alerts WHERE state IN ('firing', 'acknowledged', 'latched')
           GROUP BY enterprise) live ON live.enterprise = e.id
WHERE e.active;

CREATE VIEW alert_region_colours AS
WITH RECURSIVE chain (code, ancestor) AS (
    SELECT code, code FROM regions
    UNION   -- not UNION ALL: a cycle in the parent links (a data error) must end the recursion
    SELECT chain.code, r.parent FROM chain JOIN regions r ON r.code = chain.ancestor WHERE r.parent IS NOT NULL
),
assessed AS (
    SELECT chain.ancestor AS region, max(alert_colour_rank(e.risk_colour))::smallint AS grade
    FROM enterprises e JOIN chain ON chain.code = e.region
    WHERE e.active
    GROUP BY chain.ancestor
),
live AS (
    SELECT chain.ancestor AS region, max(a.grade)::smallint AS grade, count(*) AS n
    FROM alerts a JOIN chain ON chain.code = a.region
    WHERE a.state IN ('firing', 'acknowledged', 'latched')
    GROUP BY chain.ancestor
)
SELECT r.code AS region, r.name, r.level, r.parent,
       alert_colour_name(assessed.grade) AS assessed,
       alert_colour_name(live.grade) AS live,
       alert_colour_name(GREATEST(assessed.grade, live.grade)) AS dynamic,
       coalesce(live.n, 0) AS open_alerts
FROM regions r
LEFT JOIN assessed ON assessed.region = r.code
LEFT JOIN live ON live.region = r.code;
