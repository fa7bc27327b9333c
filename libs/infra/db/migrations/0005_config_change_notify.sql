-- Replicas cache endpoint settings (libs/delivery/endpoint_cache.py). PostgreSQL tells them
-- when to drop an entry: every update or delete of an endpoint, an organization (its webhook
-- secret signs per-job webhooks) or an agent (its rules and workspace reach agent sinks)
-- sends `<kind>:<id>` on channel hookpost_config, delivered when the change commits.
CREATE FUNCTION hookpost_notify_config_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('hookpost_config', TG_ARGV[0] || ':' || OLD.id);
    ELSE
        PERFORM pg_notify('hookpost_config', TG_ARGV[0] || ':' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_notify_change AFTER UPDATE OR DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION hookpost_notify_config_change('endpoint');
CREATE TRIGGER organizations_notify_change AFTER UPDATE OR DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION hookpost_notify_config_change('organization');
CREATE TRIGGER agents_notify_change AFTER UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION hookpost_notify_config_change('agent');
