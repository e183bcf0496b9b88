-- Multistream fan-out: where a tenant's classes can be pushed (RTMP, RTMPS,
-- SRT) and which live class is pushed where. A destination's state is in
-- the class's log (`destination.status`), not here.
CREATE TABLE destinations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('rtmp', 'rtmps', 'srt')),
    -- without the stream key
    url         text NOT NULL,
    -- sealed by the key-encryption key; never returned, never logged
    stream_key  text,
    audience    text NOT NULL CHECK (audience IN ('public', 'private')),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX destinations_by_tenant ON destinations (tenant_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE session_destinations (
    session_id      uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    destination_id  uuid NOT NULL REFERENCES destinations(id),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    attached_by     uuid,
    attached_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, destination_id)
);
CREATE INDEX session_destinations_by_destination ON session_destinations (destination_id);
