-- For operators' own tables behind `resources.<Type>.query`: attach this trigger so that every
-- replica evicts a resource's cached attributes the moment its row changes, e.g.
--   CREATE TRIGGER stock_notify AFTER INSERT OR UPDATE OR DELETE ON stock
--       FOR EACH ROW EXECUTE FUNCTION poolgate_notify_resource('Stock', 'id');
-- Arguments: the resource type name, and the column holding the id the query takes as $1.
CREATE FUNCTION poolgate_notify_resource() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
DECLARE
    type_name TEXT := TG_ARGV[0];
    key_column TEXT := TG_ARGV[1];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM poolgate_announce('resource', type_name, to_jsonb(OLD) ->> key_column);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM poolgate_announce('resource', type_name, to_jsonb(NEW) ->> key_column);
    END IF;
    RETURN NULL;
END $$;
