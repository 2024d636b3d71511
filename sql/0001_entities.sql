-- Canonical entities and the external objects linked to them.

CREATE TABLE entities (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('issue', 'pull_request', 'task')),
    status          text NOT NULL CHECK (status IN ('triage', 'backlog', 'todo', 'in_progress',
                                                    'in_review', 'blocked', 'done', 'cancelled')),
    -- grows by one on every applied change; optimistic concurrency for writers
    version         bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    last_system     text,
    last_source_ts  timestamptz,
    -- our clock at the last applied change: the conflict window is measured from it
    last_applied_at timestamptz,
    -- `project:` room: a Linear team key or owner/repo
    project         text,
    title           text,
    -- set when conflicts escalate: every further update waits for a person
    manual          boolean NOT NULL DEFAULT false,
    -- systems that asserted the current status since it was set (conflict detection)
    confirmed_by    text[] NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entity_links (
    system      text NOT NULL CHECK (system IN ('postgresql', 'linear', 'github', 'agentapi')),
    external_id text NOT NULL CHECK (external_id <> ''),
    entity_id   uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    -- another accepted name for the same object (Linear `ENG-123` next to its UUID)
    alias       text,
    -- `primary` for the object itself, `project_item` for a GitHub Projects v2 item
    role        text NOT NULL DEFAULT 'primary',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, external_id)
);
CREATE UNIQUE INDEX entity_links_alias ON entity_links (system, alias) WHERE alias IS NOT NULL;
CREATE INDEX entity_links_entity ON entity_links (entity_id);

-- Per entity and system: the newest source timestamp applied, for stale detection.
CREATE TABLE entity_sources (
    entity_id      uuid NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    system         text NOT NULL,
    last_source_ts timestamptz NOT NULL,
    last_status    text NOT NULL,
    PRIMARY KEY (entity_id, system)
);
