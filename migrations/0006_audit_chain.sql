-- A tamper-evident audit log: every row of a tenant is chained to the one
-- before it by a SHA-256 hash over its fields, numbered without gaps per
-- tenant (`chain_seq`), and the tenant's chain head (last number and hash)
-- is kept apart. `core audit verify` recomputes the chain: an edited row
-- breaks its hash, a removed row breaks the numbering or the link, a removed
-- tail no longer reaches the head.

ALTER TABLE audit_log
    ADD COLUMN chain_seq   bigint,
    ADD COLUMN prev_hash   bytea,
    ADD COLUMN hash        bytea,
    -- where the request came from (NULL for the CLI and background work)
    ADD COLUMN source_addr inet;

-- One row's hash: the previous hash, then every field in a fixed order,
-- each as text independent of the session's settings (time in
-- microseconds since the epoch), separated by a byte no field holds.
CREATE FUNCTION audit_row_hash(
    prev bytea, tenant uuid, seq bigint, actor uuid, action text,
    target_type text, target_id text, details jsonb, at timestamptz,
    source inet
) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(
        coalesce(prev, ''::bytea) || convert_to(concat_ws(E'\x1f',
            tenant::text,
            seq::text,
            coalesce(actor::text, '-'),
            action,
            target_type,
            target_id,
            details::text,
            (extract(epoch FROM at) * 1000000)::bigint::text,
            coalesce(host(source), '-')
        ), 'UTF8'))
$$;

CREATE TABLE audit_chain_heads (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants(id),
    last_seq   bigint NOT NULL,
    last_hash  bytea NOT NULL
);

-- Chain the rows written before this migration, in their order.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
DO $$
DECLARE
    r record;
    prev bytea;
    n bigint;
    cur uuid;
BEGIN
    cur := NULL;
    FOR r IN SELECT * FROM audit_log ORDER BY tenant_id, id LOOP
        IF cur IS DISTINCT FROM r.tenant_id THEN
            IF cur IS NOT NULL THEN
                INSERT INTO audit_chain_heads VALUES (cur, n, prev);
            END IF;
            cur := r.tenant_id;
            prev := NULL;
            n := 0;
        END IF;
        n := n + 1;
        UPDATE audit_log SET chain_seq = n, prev_hash = prev,
               hash = audit_row_hash(prev, r.tenant_id, n, r.actor_id, r.action,
                                     r.target_type, r.target_id, r.details, r.at, NULL)
         WHERE id = r.id
        RETURNING hash INTO prev;
    END LOOP;
    IF cur IS NOT NULL THEN
        INSERT INTO audit_chain_heads VALUES (cur, n, prev);
    END IF;
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;

ALTER TABLE audit_log
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
CREATE UNIQUE INDEX audit_log_tenant_chain ON audit_log (tenant_id, chain_seq);
