-- Every accepted webhook delivery and API update, raw, before anything acts on it.
-- A webhook is answered 2xx only after its row here is committed.

CREATE TABLE inbound_events (
    id           bigserial PRIMARY KEY,
    system       text NOT NULL CHECK (system IN ('postgresql', 'linear', 'github', 'agentapi')),
    -- X-GitHub-Delivery, Linear-Delivery, X-Statsync-Delivery, else sha256 of the body
    delivery_id  text NOT NULL,
    -- X-GitHub-Event, Linear-Event / payload type, `report` for the agent API
    event_type   text NOT NULL,
    -- 0 critical, 1 high, 2 normal, 3 low
    priority     smallint NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 3),
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'processed', 'ignored', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    -- what was decided, or why it could not be processed
    outcome      text,
    last_error   text,
    UNIQUE (system, delivery_id)
);
CREATE INDEX inbound_events_pending ON inbound_events (priority, id) WHERE state = 'pending';
