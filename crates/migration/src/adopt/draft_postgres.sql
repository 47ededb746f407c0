-- The product's draft schema (dual-database-design.md §3) as it was created on Supabase:
-- the shape `migration adopt` recognises as "the draft" on Postgres. Constraint names are
-- the ones Postgres chooses for these inline constraints.

CREATE TABLE users (
    id uuid PRIMARY KEY
);

CREATE TABLE projects (
    id          uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text    NOT NULL,
    user_id     uuid    NOT NULL,
    created_at  timestamptz DEFAULT now()
);

CREATE TABLE tasks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_type       text    NOT NULL,
    params          jsonb   NOT NULL,
    status          text    CHECK (status IN ('Pending','In Progress','Complete','Failed','Queued','Cancelled')),
    dependant_on    uuid[]  DEFAULT '{}',
    output_location text,
    created_at      timestamptz DEFAULT now(),
    updated_at      timestamptz,
    project_id      uuid    REFERENCES projects(id)
);

CREATE TABLE generations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tasks       uuid[] DEFAULT '{}',
    location    text,
    "type"      text,
    created_at  timestamptz DEFAULT now(),
    updated_at  timestamptz,
    project_id  uuid REFERENCES projects(id)
);

CREATE TABLE shots (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    created_at  timestamptz DEFAULT now(),
    updated_at  timestamptz,
    project_id  uuid REFERENCES projects(id)
);

CREATE TABLE shot_generations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    shot_id        uuid REFERENCES shots(id),
    generation_id  uuid REFERENCES generations(id),
    position       int  DEFAULT 0
);
