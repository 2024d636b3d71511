-- What happened: every decision on every entity, the event log subscribers resume
-- from, and conflicts.

CREATE TABLE status_transitions (
    id               bigserial PRIMARY KEY,
    entity_id        uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    from_status      text,
    to_status        text NOT NULL,
    system           text NOT NULL,
    source_ts        timestamptz NOT NULL,
    -- applied | noop | stale | conflict | rejected
    decision         text NOT NULL,
    reason           text NOT NULL,
    -- the entity's version after this decision (unchanged unless applied)
    version          bigint NOT NULL,
    inbound_event_id bigint REFERENCES inbound_events (id),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_transitions_entity ON status_transitions (entity_id, id DESC);

-- seq is gap-free and in commit order: it is taken from event_seq's single row, whose
-- row lock is held until the writing transaction commits.
CREATE TABLE event_seq (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_seq bigint NOT NULL
);
INSERT INTO event_seq (last_seq) VALUES (0);

CREATE TABLE events (
    seq        bigint PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    type       text NOT NULL,
    entity_id  uuid,
    rooms      text[] NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_at ON events (created_at);
CREATE INDEX events_rooms ON events USING gin (rooms);

CREATE TABLE conflicts (
    id                uuid PRIMARY KEY,
    entity_id         uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    state             text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    strategy          text NOT NULL,
    escalated         boolean NOT NULL DEFAULT false,
    current_status    text NOT NULL,
    current_system    text,
    incoming_status   text NOT NULL,
    incoming_system   text NOT NULL,
    incoming_ts       timestamptz NOT NULL,
    winner_system     text,
    winner_status     text,
    reason            text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    resolved_by       text,
    resolution_status text
);
CREATE INDEX conflicts_open ON conflicts (created_at) WHERE state = 'open';
CREATE INDEX conflicts_entity ON conflicts (entity_id, created_at DESC);
