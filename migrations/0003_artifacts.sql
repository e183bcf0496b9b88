-- The artifact pipeline (spec §7-8): what each class becomes after it ends.
--
-- A job per ended session; its stages run in order, each one idempotent and
-- versioned: an artifact row is keyed by (session, kind, version), so a
-- better model re-runs a stage as a new version and the old one stays.

CREATE TABLE artifact_jobs (
    session_id       uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    -- the event that asked for the job (session.ended / recording.finalized)
    trigger_seq      bigint NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    -- re-run every stage even when its inputs did not change
    force            boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id)
);
CREATE INDEX artifact_jobs_due ON artifact_jobs (next_attempt_at) WHERE state = 'pending';

CREATE TABLE artifact_stages (
    session_id   uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    stage        text NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    state        text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    input_hash   text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (session_id, stage, version),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id)
);

CREATE TABLE artifacts (
    session_id  uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    kind        text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    input_hash  text NOT NULL,
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, kind, version),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id)
);

-- A published replay of a class.
CREATE TABLE replays (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    session_id    uuid NOT NULL,
    visibility    text NOT NULL CHECK (visibility IN ('enrolled', 'tenant', 'public')),
    published_by  uuid NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (session_id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id),
    FOREIGN KEY (tenant_id, published_by) REFERENCES users(tenant_id, id)
);

-- Who opened or searched a replay, and how (FERPA access records).
CREATE TABLE replay_access_log (
    id         bigserial PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    replay_id  uuid NOT NULL,
    user_id    uuid,
    via        text NOT NULL CHECK (via IN ('account', 'public_link')),
    action     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, replay_id) REFERENCES replays(tenant_id, id)
);
CREATE INDEX replay_access_log_replay ON replay_access_log (replay_id, at);
CREATE TRIGGER replay_access_log_append_only
    BEFORE UPDATE OR DELETE ON replay_access_log
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
