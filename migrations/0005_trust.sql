-- Edges belong to a tenant (a campus box) or are shared (NULL).
ALTER TABLE edges ADD COLUMN tenant_id uuid REFERENCES tenants(id);

-- What the trust boundary refused: a heartbeat, relay token request or
-- event that arrived under an identity that may not send it. Platform-wide
-- (an edge may belong to no tenant); rows that concern a tenant are also
-- written to that tenant's audit log.
CREATE TABLE trust_refusals (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    edge_id    text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('heartbeat', 'relay_token', 'event')),
    tenant_id  uuid,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX trust_refusals_at ON trust_refusals (at);
