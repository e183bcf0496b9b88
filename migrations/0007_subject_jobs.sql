-- Data-subject requests (GDPR/FERPA): an export of everything the platform
-- holds about one person, run as a job and downloaded through a signed
-- link. (Erasure will be a second kind of job.)
CREATE TABLE subject_jobs (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    user_id       uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('export')),
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    requested_by  uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    error         text,
    object_key    text,
    bytes         bigint,
    sha256        text,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id),
    FOREIGN KEY (tenant_id, requested_by) REFERENCES users(tenant_id, id)
);
CREATE INDEX subject_jobs_due ON subject_jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX subject_jobs_user ON subject_jobs (tenant_id, user_id);
