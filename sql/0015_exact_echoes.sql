-- Echoes recognised exactly (DESIGN, "Time, echoes and loops"). `sync_echoes` kept one
-- row per object and status, so a person moving an issue back to a status statsync had
-- written earlier was taken for that write's echo. Each write is now its own row, with
-- the object's updated-at that the write's answer gave: the webhook about the write
-- carries that same time, and a delivery later than every write is never an echo.
CREATE TABLE sync_writes (
    id                bigserial PRIMARY KEY,
    system            text NOT NULL,
    external_id       text NOT NULL,
    status            text NOT NULL,
    -- The object's updated-at in the write's answer (the system's clock), when given.
    object_updated_at timestamptz,
    -- When the write was recorded (statsync's clock); pruning goes by it.
    written_at        timestamptz NOT NULL DEFAULT now(),
    -- When its echo came: each write's echo is consumed once.
    echoed_at         timestamptz
);
CREATE INDEX sync_writes_object ON sync_writes (system, external_id);
CREATE INDEX sync_writes_written_at ON sync_writes USING brin (written_at);

-- Replicas still running the previous release write to sync_echoes during a rolling
-- update; it is dropped by a later migration, once none can.
COMMENT ON TABLE sync_echoes IS 'superseded by sync_writes (0015); no longer read';
