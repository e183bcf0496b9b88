-- Retention (COPPA 2025: a written policy, nothing kept indefinitely): how
-- long each kind of data lives, per tenant, in days; a sweep in core
-- removes what is past it and records that it did. A course on legal hold
-- keeps everything until the hold is released.
CREATE TABLE retention_policies (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants(id),
    -- a class: its events, seats, artifacts, replay, recording, everything
    class_days       integer NOT NULL CHECK (class_days BETWEEN 1 AND 36500),
    recording_days   integer NOT NULL CHECK (recording_days BETWEEN 1 AND 36500),
    -- transcripts and what is derived from them (and the search index)
    transcript_days  integer NOT NULL CHECK (transcript_days BETWEEN 1 AND 36500),
    -- replay openings and searches
    access_log_days  integer NOT NULL CHECK (access_log_days BETWEEN 1 AND 36500),
    analytics_days   integer NOT NULL CHECK (analytics_days BETWEEN 1 AND 36500),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       uuid,
    CHECK (recording_days <= class_days AND transcript_days <= class_days)
);

ALTER TABLE courses ADD COLUMN legal_hold boolean NOT NULL DEFAULT false;
ALTER TABLE courses ADD COLUMN legal_hold_reason text;
ALTER TABLE courses ADD COLUMN legal_hold_at timestamptz;

-- What the sweep removed of a class; the session row stays as the record
-- that the class was (title, course, times), with nothing of its content.
ALTER TABLE sessions ADD COLUMN purged_at timestamptz;
ALTER TABLE sessions ADD COLUMN recording_purged_at timestamptz;
ALTER TABLE sessions ADD COLUMN transcript_purged_at timestamptz;

CREATE TABLE retention_removals (
    id           bigserial PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   uuid,
    what         text NOT NULL CHECK (what IN ('class', 'recording', 'transcript', 'access_log')),
    -- the class's end, or the cut-off for access log rows
    older_than   timestamptz NOT NULL,
    rows         bigint NOT NULL DEFAULT 0,
    objects      bigint NOT NULL DEFAULT 0,
    removed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retention_removals_tenant ON retention_removals (tenant_id, removed_at DESC);

-- The append-only tables still refuse every UPDATE and DELETE, except the
-- retention sweep's deletes of class events and replay access rows, inside
-- a transaction that says so (`SET LOCAL classroom.retention_sweep = 'on'`).
-- The audit log is never swept.
CREATE OR REPLACE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND TG_TABLE_NAME IN ('session_state_events', 'replay_access_log')
       AND current_setting('classroom.retention_sweep', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
