-- Every change to an admin table is announced on the channel `poolgate_changes`, so that each
-- replica evicts exactly the cache entries it affects. Payload: {"kind", "pool", "key"}, where
-- kind is `principal` (key = subject) or `revocation` (key = jti); `flush` asks for a full
-- eviction (TRUNCATE, or a key too long for a notification payload).

CREATE FUNCTION poolgate_announce(kind TEXT, pool TEXT, key TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT := json_build_object('kind', kind, 'pool', pool, 'key', key)::text;
BEGIN
    IF octet_length(payload) > 7000 THEN
        payload := json_build_object('kind', 'flush')::text;
    END IF;
    PERFORM pg_notify('poolgate_changes', payload);
END $$;

-- Row triggers pass the notification kind, the key column and, for tables without a `pool`
-- column, the value to announce as `pool`. Operators attach it to the tables behind
-- `resources.<Type>.query`, with kind `resource` and the type name, e.g.
--   CREATE TRIGGER stock_notify AFTER INSERT OR UPDATE OR DELETE ON stock
--       FOR EACH ROW EXECUTE FUNCTION poolgate_notify_row('resource', 'sku', 'Stock');
CREATE FUNCTION poolgate_notify_row() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
DECLARE
    kind TEXT := TG_ARGV[0];
    key_column TEXT := TG_ARGV[1];
    fixed_pool TEXT := CASE WHEN TG_NARGS > 2 THEN TG_ARGV[2] END;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM poolgate_announce(kind, COALESCE(fixed_pool, to_jsonb(OLD) ->> 'pool'), to_jsonb(OLD) ->> key_column);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM poolgate_announce(kind, COALESCE(fixed_pool, to_jsonb(NEW) ->> 'pool'), to_jsonb(NEW) ->> key_column);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION poolgate_notify_flush() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('poolgate_changes', json_build_object('kind', 'flush')::text);
    RETURN NULL;
END $$;

CREATE TRIGGER principals_notify AFTER INSERT OR UPDATE OR DELETE ON principals
    FOR EACH ROW EXECUTE FUNCTION poolgate_notify_row('principal', 'subject');
CREATE TRIGGER principal_flags_notify AFTER INSERT OR UPDATE OR DELETE ON principal_flags
    FOR EACH ROW EXECUTE FUNCTION poolgate_notify_row('principal', 'subject');
CREATE TRIGGER revoked_tokens_notify AFTER INSERT OR UPDATE OR DELETE ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION poolgate_notify_row('revocation', 'jti');

CREATE TRIGGER principals_truncate AFTER TRUNCATE ON principals
    FOR EACH STATEMENT EXECUTE FUNCTION poolgate_notify_flush();
CREATE TRIGGER principal_flags_truncate AFTER TRUNCATE ON principal_flags
    FOR EACH STATEMENT EXECUTE FUNCTION poolgate_notify_flush();
CREATE TRIGGER revoked_tokens_truncate AFTER TRUNCATE ON revoked_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION poolgate_notify_flush();
