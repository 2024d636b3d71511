-- Outbound writes: one row per applied change and linked system, retried until it
-- succeeds or is dead-lettered. Claimed with FOR UPDATE SKIP LOCKED.

CREATE TABLE sync_outbox (
    id               bigserial PRIMARY KEY,
    entity_id        uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    system           text NOT NULL CHECK (system IN ('linear', 'github', 'agentapi')),
    external_id      text NOT NULL,
    status           text NOT NULL,
    previous_status  text,
    entity_version   bigint NOT NULL,
    operation_id     uuid NOT NULL,
    event_seq        bigint,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'in_flight', 'done', 'noop', 'superseded', 'dead')),
    attempt_count    integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    error_code       text,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX sync_outbox_runnable ON sync_outbox (run_at, id) WHERE state IN ('pending', 'in_flight');
CREATE INDEX sync_outbox_entity_system ON sync_outbox (entity_id, system, id);
CREATE INDEX sync_outbox_dead ON sync_outbox (updated_at) WHERE state = 'dead';

-- Outbound writes recently made, so the webhook echo of our own write is recognised.
CREATE TABLE sync_echoes (
    system      text NOT NULL,
    external_id text NOT NULL,
    status      text NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, external_id, status)
);
