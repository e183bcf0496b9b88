-- Each tenant's recording key pair. Recordings in object storage are sealed
-- to the tenant's public key (by the edge that records, and by core when it
-- joins segments into one file); the private key, which alone opens them,
-- is stored wrapped by the key-encryption key and never leaves core.
CREATE TABLE tenant_recording_keys (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    -- the first 16 bytes of SHA-256 of the public key, in hex; each sealed
    -- object names the key it was sealed to by it
    kid            text NOT NULL,
    -- the X25519 public key, 64 hex digits (sent to edges with each class)
    public_key     text NOT NULL,
    kek_id         text NOT NULL,
    wrapped_secret bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kid)
);

-- A data-subject export is a copy of a person's data: its archive is kept
-- a week after it was made, then the retention sweep removes it (and says so).
ALTER TABLE retention_removals DROP CONSTRAINT retention_removals_what_check;
ALTER TABLE retention_removals ADD CONSTRAINT retention_removals_what_check
    CHECK (what IN ('class', 'recording', 'transcript', 'access_log', 'export'));
