-- The journal's subject type: what an entry is about (alert today; hidden hazards, users and key
-- changes next), so other records are journaled and verified the same way. Entries written before
-- this migration are alerts' (and silences', which were journaled as alerts' entries).
--
-- The hash leaves the type out for alerts, exactly as it was computed before the column existed,
-- so every earlier entry still verifies: concat_ws skips the NULL the CASE gives for 'alert'.
-- Every other type is hashed right after at_us. Changing an entry's type changes which fields are
-- hashed, so it breaks the entry's hash either way.
ALTER TABLE alert_journal
    ADD COLUMN subject_type text NOT NULL DEFAULT 'alert'
        CONSTRAINT alert_journal_subject_type CHECK (subject_type ~ '^[a-z][a-z_]{0,31}$'),
    -- only an alert has an alert_id: reads of an alert's entries by id never meet another subject's
    ADD CONSTRAINT alert_journal_subject_id CHECK (subject_type = 'alert' OR alert_id IS NULL);
CREATE INDEX alert_journal_subject ON alert_journal (subject_type, alert_key, seq);

CREATE OR REPLACE FUNCTION alert_journal_link() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
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
               CASE WHEN e.subject_type = 'alert' THEN NULL ELSE e.subject_type END,
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
