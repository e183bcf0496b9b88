-- Analytics: who came to each class, who took part and how, a per-minute
-- engagement timeline, poll results, and which parts of a replay people
-- watch. Everything but the replay tables is a fold of a class's log
-- (`session_state_events`) by the `core-analytics` consumer; `core analytics
-- rebuild` folds the logs again and writes the same rows.

-- One row per folded class: where the fold stands (`last_seq`, written in
-- the same transaction as the rows below, so a redelivered event changes
-- nothing) and the fold's working state (seats, open presence, polls).
CREATE TABLE analytics_sessions (
    session_id     uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    course_id      uuid NOT NULL,
    lesson_id      uuid NOT NULL,
    lesson_run_id  uuid NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    last_seq       bigint NOT NULL,
    events         bigint NOT NULL,
    state          jsonb NOT NULL
);
CREATE INDEX analytics_sessions_course ON analytics_sessions (course_id, started_at);

-- A person in a class: presence and participation. `attendance_only`: they
-- declined recording, so only their presence is counted.
CREATE TABLE analytics_attendance (
    session_id       uuid NOT NULL REFERENCES analytics_sessions(session_id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,
    course_id        uuid NOT NULL,
    user_id          uuid NOT NULL,
    role             text NOT NULL,
    first_join       timestamptz NOT NULL,
    -- the last leave (or the class's end while they were in); NULL while in
    last_leave       timestamptz,
    -- closed presence intervals; an open one counts up to now when read
    present_ms       bigint NOT NULL,
    open_since       timestamptz,
    joins            integer NOT NULL,
    attendance_only  boolean NOT NULL,
    chat             integer NOT NULL,
    questions        integer NOT NULL,
    upvotes          integer NOT NULL,
    poll_answers     integer NOT NULL,
    poll_correct     integer NOT NULL,
    hands            integer NOT NULL,
    -- speech attributed to them (captions with a known speaker)
    speaking_ms      bigint NOT NULL,
    -- time with a microphone track open (from media events)
    mic_ms           bigint NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX analytics_attendance_user ON analytics_attendance (tenant_id, user_id);
CREATE INDEX analytics_attendance_course ON analytics_attendance (course_id);

-- The class minute by minute (minute 0 starts at the class's start).
-- `attendee_ms`: presence summed over everyone in that minute (60,000 is
-- one person all minute long); counts are anonymous.
CREATE TABLE analytics_minutes (
    session_id    uuid NOT NULL REFERENCES analytics_sessions(session_id) ON DELETE CASCADE,
    minute        integer NOT NULL,
    attendee_ms   bigint NOT NULL,
    chat          integer NOT NULL,
    questions     integer NOT NULL,
    poll_answers  integer NOT NULL,
    hands         integer NOT NULL,
    speaking_ms   bigint NOT NULL,
    PRIMARY KEY (session_id, minute)
);

CREATE TABLE analytics_polls (
    session_id      uuid NOT NULL REFERENCES analytics_sessions(session_id) ON DELETE CASCADE,
    poll_id         uuid NOT NULL,
    opened_seq      bigint NOT NULL,
    opened_at       timestamptz NOT NULL,
    question        text NOT NULL,
    options         jsonb NOT NULL,
    correct_option  integer,
    answers         integer NOT NULL,
    correct         integer NOT NULL,
    PRIMARY KEY (session_id, poll_id)
);

-- Each person's last answer to each poll.
CREATE TABLE analytics_poll_answers (
    session_id  uuid NOT NULL REFERENCES analytics_sessions(session_id) ON DELETE CASCADE,
    poll_id     uuid NOT NULL,
    user_id     uuid NOT NULL,
    option      integer NOT NULL,
    correct     boolean,
    PRIMARY KEY (session_id, poll_id, user_id)
);
CREATE INDEX analytics_poll_answers_user ON analytics_poll_answers (user_id);

-- Replay viewing: the replay page's progress beacons (raw, kept for the
-- tenant's `beacon_days`) and what they add up to (kept with analytics).
CREATE TABLE replay_beacons (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    session_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    from_ms     bigint NOT NULL,
    to_ms       bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replay_beacons_tenant_at ON replay_beacons (tenant_id, at);
CREATE INDEX replay_beacons_user ON replay_beacons (tenant_id, user_id);

-- Views per second of a replay's media.
CREATE TABLE analytics_replay_seconds (
    session_id  uuid NOT NULL,
    second      integer NOT NULL,
    views       bigint NOT NULL,
    PRIMARY KEY (session_id, second)
);

-- Who watched how much of which replay.
CREATE TABLE analytics_replay_viewers (
    session_id  uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    watched_ms  bigint NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX analytics_replay_viewers_user ON analytics_replay_viewers (tenant_id, user_id);

ALTER TABLE retention_policies ADD COLUMN beacon_days integer NOT NULL DEFAULT 30
    CHECK (beacon_days BETWEEN 1 AND 36500);
ALTER TABLE retention_removals DROP CONSTRAINT retention_removals_what_check;
ALTER TABLE retention_removals ADD CONSTRAINT retention_removals_what_check
    CHECK (what IN ('class', 'recording', 'transcript', 'access_log', 'export', 'analytics', 'beacons'));

-- A tenant's Learning Record Store (xAPI): where statements go.
CREATE TABLE tenant_lrs (
    tenant_id    uuid PRIMARY KEY REFERENCES tenants(id),
    endpoint     text NOT NULL,
    username     text NOT NULL,
    -- sealed by the key-encryption key; never returned
    secret       text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   uuid
);

-- xAPI statements waiting for (or done with) their LRS. Written in the same
-- transaction as the fold that made them; the sender takes due rows with
-- SKIP LOCKED, so any number of core replicas send each statement once.
CREATE TABLE xapi_outbox (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    statement     jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    last_status   integer,
    last_error    text
);
CREATE INDEX xapi_outbox_due ON xapi_outbox (next_at) WHERE sent_at IS NULL;
