-- The service runs as a member of yujing_service (store/roles.sql), which owns nothing: it reads
-- and writes data, appends to the audit journal, and reaches the few owner-only operations it needs
-- (dropping old chunks, the chunk interval) through SECURITY DEFINER functions that check their
-- arguments. The migration role (the one running this file) owns everything else, including the
-- journal and its triggers, so only it or a superuser can disable them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'yujing_service') THEN
        RAISE EXCEPTION 'role yujing_service does not exist: a superuser must run store/roles.sql first '
                        '(deploy/setup/database.sh does; so does `yujing migrate` run as a superuser)';
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO yujing_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO yujing_service;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO yujing_service;
-- tables and sequences of later migrations (created by the same migration role) too
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO yujing_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO yujing_service;

-- Append-only records: read and add, never change.
REVOKE ALL ON alert_journal, alert_journal_head, api_write_audit, schema_migrations FROM yujing_service;
GRANT SELECT, INSERT ON alert_journal, api_write_audit TO yujing_service;
GRANT SELECT ON alert_journal_head, schema_migrations TO yujing_service;

-- The chain is checked as it is written: the entries a statement adds must continue the head one
-- by one (seq = head + 1, + 2, …; prev_hash = the hash before) and each must carry the hash of its
-- own fields; the head row then moves to the last of them. Once per statement, over its transition
-- table, so a COPY of many entries moves the head once. The service cannot write the head row
-- itself (SELECT only), so the head is always the journal's last entry.
CREATE FUNCTION alert_journal_link() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    head record;
    bad record;
    last record;
BEGIN
    SELECT seq, hash INTO head FROM public.alert_journal_head WHERE singleton FOR UPDATE;
    SELECT e.seq,
           e.seq <> head.seq + e.n OR e.prev_hash <> coalesce(e.before, head.hash) AS unlinked
      INTO bad
      FROM (SELECT j.*, row_number() OVER w AS n, lag(j.hash) OVER w AS before
              FROM new_entries j WINDOW w AS (ORDER BY j.seq)) e
     WHERE e.seq <> head.seq + e.n OR e.prev_hash <> coalesce(e.before, head.hash)
        OR e.hash <> encode(sha256(convert_to(concat_ws(E'\x1f', e.prev_hash, e.seq::text, e.at_us::text,
               coalesce(e.alert_id::text, ''), e.alert_key, e.version::text, e.action, e.actor, e.detail),
               'UTF8')), 'hex')
     ORDER BY e.seq LIMIT 1;
    IF FOUND AND bad.unlinked THEN
        RAISE EXCEPTION 'alert_journal: entry % does not continue the chain (head is %)', bad.seq, head.seq;
    ELSIF FOUND THEN
        RAISE EXCEPTION 'alert_journal: entry % does not carry the hash of its fields', bad.seq;
    END IF;
    SELECT seq, hash INTO last FROM new_entries ORDER BY seq DESC LIMIT 1;
    IF FOUND THEN
        UPDATE public.alert_journal_head SET seq = last.seq, hash = last.hash WHERE singleton;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER alert_journal_link AFTER INSERT ON alert_journal REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION alert_journal_link();

-- The appender's lock: the head row FOR UPDATE (appends are serialised), without UPDATE rights.
CREATE FUNCTION alert_journal_lock_head(OUT seq bigint, OUT hash text) LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
    SELECT h.seq, h.hash FROM public.alert_journal_head h WHERE h.singleton FOR UPDATE
$$;

-- Retention: drop whole chunks of the three hypertables, never younger than their floor (raw
-- readings 92 days, the coal-mine minimum; rollups 730 days).
CREATE FUNCTION yujing_drop_chunks(hypertable text, older_than timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    floor_days integer := CASE hypertable WHEN 'readings' THEN 92 WHEN 'readings_1m' THEN 730
                                          WHEN 'readings_1h' THEN 730 END;
    n integer;
BEGIN
    IF floor_days IS NULL THEN
        RAISE EXCEPTION 'yujing_drop_chunks: % is not a hypertable whose chunks may be dropped', hypertable;
    END IF;
    IF older_than > now() - make_interval(days => floor_days) THEN
        RAISE EXCEPTION 'yujing_drop_chunks: % keeps at least % days (asked to drop from %)',
            hypertable, floor_days, older_than;
    END IF;
    SELECT count(*) INTO n FROM public.drop_chunks(hypertable::regclass, older_than => older_than);
    RETURN n;
END $$;

-- The readings chunk interval (chunks created from now on), 1 minute … 7 days.
CREATE FUNCTION yujing_set_chunk_interval(interval_s double precision) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF interval_s IS NULL OR interval_s < 60 OR interval_s > 7 * 86400 THEN
        RAISE EXCEPTION 'yujing_set_chunk_interval: % s is outside 60 s … 7 days', interval_s;
    END IF;
    PERFORM public.set_chunk_time_interval('public.readings'::regclass, make_interval(secs => interval_s));
END $$;

REVOKE ALL ON FUNCTION alert_journal_link(), alert_journal_lock_head(), yujing_drop_chunks(text, timestamptz),
    yujing_set_chunk_interval(double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alert_journal_lock_head(), yujing_drop_chunks(text, timestamptz),
    yujing_set_chunk_interval(double precision) TO yujing_service;
