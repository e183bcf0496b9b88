-- The truth model: tenants, identity, courses to sessions, and the append-only
-- session event log. Every tenant-owned table carries tenant_id, and every
-- reference between tenant-owned rows goes through (tenant_id, id), so a row
-- can never point into another tenant.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{1,64}$'),
    name        text NOT NULL,
    -- recording_required, public_viewing, blocked_words ...
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    email          text NOT NULL CHECK (email = lower(email) AND position('@' in email) > 1),
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, id)
);

CREATE TYPE tenant_role AS ENUM ('admin', 'teacher', 'assistant', 'student');

CREATE TABLE role_bindings (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    role        tenant_role NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);

-- Rotating refresh tokens. Only a hash is stored. A family is one login;
-- presenting a token that was already rotated revokes the whole family.
CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    family_id    uuid NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE courses (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    owner_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE lessons (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    course_id   uuid NOT NULL,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, course_id) REFERENCES courses(tenant_id, id)
);

CREATE TABLE lesson_runs (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    lesson_id        uuid NOT NULL,
    scheduled_start  timestamptz,
    edge_id          text,
    region           text,
    created_by       uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, lesson_id) REFERENCES lessons(tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users(tenant_id, id)
);

-- Edges announce themselves over NATS; this is core's view of them.
CREATE TABLE edges (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    url           text NOT NULL,
    region        text,
    capacity      integer NOT NULL,
    sessions      integer NOT NULL DEFAULT 0,
    participants  integer NOT NULL DEFAULT 0,
    accepting     boolean NOT NULL DEFAULT true,
    last_seen     timestamptz NOT NULL,
    first_seen    timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE session_status AS ENUM ('live', 'ended');

CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    lesson_run_id  uuid NOT NULL,
    edge_id        text NOT NULL REFERENCES edges(id),
    status         session_status NOT NULL,
    title          text NOT NULL,
    started_by     uuid NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    -- highest gap-free seq written to session_state_events
    last_seq       bigint NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, lesson_run_id) REFERENCES lesson_runs(tenant_id, id),
    FOREIGN KEY (tenant_id, started_by) REFERENCES users(tenant_id, id),
    CHECK ((status = 'ended') = (ended_at IS NOT NULL))
);
-- a lesson run has at most one live session
CREATE UNIQUE INDEX sessions_one_live_per_run ON sessions (lesson_run_id) WHERE status = 'live';

-- A projection of participant.* events, for queries; the log is the truth.
CREATE TABLE participants (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    session_id  uuid NOT NULL,
    user_id     uuid,
    role        text NOT NULL,
    edge_id     text NOT NULL,
    joined_at   timestamptz NOT NULL,
    left_at     timestamptz,
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
);
CREATE INDEX participants_session ON participants (session_id);
CREATE UNIQUE INDEX participants_one_seat_per_user ON participants (session_id, user_id) WHERE user_id IS NOT NULL;

-- The event-sourced core: append-only, gap-free per session.
CREATE TABLE session_state_events (
    event_id     uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    session_id   uuid NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 1),
    type         text NOT NULL,
    v            smallint NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor        jsonb NOT NULL,
    source       text NOT NULL,
    payload      jsonb NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, seq),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions(tenant_id, id)
);

CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER session_state_events_append_only
    BEFORE UPDATE OR DELETE ON session_state_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER session_state_events_no_truncate
    BEFORE TRUNCATE ON session_state_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- Who did what, for FERPA/GDPR audits. Append-only too.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    actor_id     uuid,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at);
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- Idempotency-Key records: the first answer to a creating POST, replayed for
-- the same key and body. `response` is NULL while the first call runs.
CREATE TABLE idempotency_keys (
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    route         text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   smallint,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, key)
);
