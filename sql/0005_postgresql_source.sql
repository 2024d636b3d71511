-- PostgreSQL as a source: another application that UPDATEs entities.status directly
-- is recorded here and drained by the engine. statsync's own writes set
-- `statsync.writer = on` for their transaction and are not recorded.

CREATE TABLE pg_status_changes (
    id          bigserial PRIMARY KEY,
    entity_id   uuid NOT NULL,
    old_status  text NOT NULL,
    new_status  text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed   boolean NOT NULL DEFAULT false
);
CREATE INDEX pg_status_changes_pending ON pg_status_changes (id) WHERE NOT processed;

CREATE FUNCTION statsync_record_external_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('statsync.writer', true) IS DISTINCT FROM 'on'
       AND NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO pg_status_changes (entity_id, old_status, new_status)
        VALUES (NEW.id, OLD.status, NEW.status);
        -- a wake-up hint only; the engine drains the table whether or not it arrives
        PERFORM pg_notify('statsync_pg_source', '');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER entities_external_status
    AFTER UPDATE OF status ON entities
    FOR EACH ROW EXECUTE FUNCTION statsync_record_external_status();
