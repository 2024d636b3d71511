-- Late linking: a GitHub pull request (or issue) first seen on its own has its own
-- entity; once it names or is attached to a Linear issue, that entity is absorbed into
-- the issue's. The absorbed row stays (its history, and API clients holding its id) and
-- points at the entity that took its links.
ALTER TABLE entities ADD COLUMN merged_into uuid REFERENCES entities (id);
ALTER TABLE entities ADD COLUMN merged_at timestamptz;
CREATE INDEX entities_merged_into ON entities (merged_into) WHERE merged_into IS NOT NULL;

-- A pull request may name (or be attached to) several Linear issues: its own ref stays
-- on one entity, and it counts in every one of those issues' multi-PR rule.
ALTER TABLE linked_pull_requests DROP CONSTRAINT linked_pull_requests_pkey;
ALTER TABLE linked_pull_requests ADD PRIMARY KEY (pull_request, issue);
-- `text`: named in its title, body or branch; `attachment`: attached in Linear.
ALTER TABLE linked_pull_requests ADD COLUMN via text NOT NULL DEFAULT 'text'
    CHECK (via IN ('text', 'attachment'));
