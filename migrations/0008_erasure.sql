-- Erasure by crypto-shredding. Personal fields of class events (display
-- names, chat, questions, notes, attributed captions) are stored sealed
-- under a data key per person; the data key is stored wrapped by the
-- key-encryption key (KEK) of a key-management service. Erasing a person
-- deletes their data key: the append-only event rows stay, unreadable.
CREATE TABLE subject_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    user_id      uuid NOT NULL,
    -- which KEK wrapped the data key (a local key file or a KMS key)
    kek_id       text NOT NULL,
    -- the wrapped data key; NULL once the person was erased
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz,
    PRIMARY KEY (tenant_id, user_id),
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);

-- An erased account keeps its id (events and audit rows point at it) and
-- nothing else of the person.
ALTER TABLE users ADD COLUMN erased_at timestamptz;

ALTER TABLE subject_jobs DROP CONSTRAINT subject_jobs_kind_check;
ALTER TABLE subject_jobs ADD CONSTRAINT subject_jobs_kind_check CHECK (kind IN ('export', 'erase'));
-- what an erasure did, for the admin who follows the job
ALTER TABLE subject_jobs ADD COLUMN result jsonb;
