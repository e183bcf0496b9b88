-- Destinations attached to a lesson run before its class starts: the start
-- carries them into the session (`session_destinations`) and the class is
-- pushed from its first second.
CREATE TABLE lesson_run_destinations (
    lesson_run_id   uuid NOT NULL REFERENCES lesson_runs(id) ON DELETE CASCADE,
    destination_id  uuid NOT NULL REFERENCES destinations(id),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    attached_by     uuid,
    attached_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lesson_run_id, destination_id)
);
