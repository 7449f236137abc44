-- AI Team schema (SQLite). Never edit a landed migration: add one.
-- JSON is kept as TEXT so that both databases share the store's SQL.
-- Money is INTEGER nano-dollars (exact sums); timestamps are RFC 3339 TEXT in UTC
-- with microseconds, which sort as time does.

CREATE TABLE workflows (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    jira_story_id   TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    repository_url  TEXT,
    description     TEXT,
    last_event_id   BIGINT NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT workflows_jira_story_id_key UNIQUE (jira_story_id)
);
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);

CREATE TABLE executions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id        BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    started_at         TEXT,
    finished_at        TEXT,
    heartbeat_at       TEXT,
    total_calls        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    total_tokens       BIGINT NOT NULL DEFAULT 0,
    total_cost_nanos   BIGINT NOT NULL DEFAULT 0,
    total_latency_ms   BIGINT NOT NULL DEFAULT 0,
    models             TEXT NOT NULL DEFAULT '[]',
    error              TEXT,
    meta               TEXT NOT NULL DEFAULT '{}',
    created_at         TEXT NOT NULL
);
CREATE INDEX executions_workflow_idx ON executions (workflow_id, id DESC);
-- At most one live execution per workflow: the race-safe 409.
CREATE UNIQUE INDEX executions_one_live_per_workflow
    ON executions (workflow_id) WHERE status IN ('pending', 'running');

-- The engine's claim on one step of one execution (at-least-once delivery,
-- exactly-once effects).
CREATE TABLE step_leases (
    execution_id      BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step              TEXT NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped')),
    lease_owner       TEXT,
    lease_expires_at  TEXT,
    heartbeat_at      TEXT,
    started_at        TEXT,
    finished_at       TEXT,
    result            TEXT,
    PRIMARY KEY (execution_id, step)
);

-- Running summary, artifact index and remaining budgets after each step.
CREATE TABLE checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id    BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step            TEXT NOT NULL,
    summary         TEXT NOT NULL,
    artifact_index  TEXT NOT NULL DEFAULT '[]',
    budgets         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    CONSTRAINT checkpoints_execution_step_key UNIQUE (execution_id, step)
);

CREATE TABLE conversations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id        BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    execution_id       BIGINT REFERENCES executions (id) ON DELETE CASCADE,
    agent              TEXT NOT NULL,
    step               TEXT NOT NULL,
    prompt             TEXT NOT NULL,
    output             TEXT,
    details            TEXT NOT NULL DEFAULT '{}',
    timestamp          TEXT NOT NULL,
    total_tokens_used  BIGINT NOT NULL DEFAULT 0,
    total_cost_nanos   BIGINT NOT NULL DEFAULT 0,
    call_count         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX conversations_workflow_idx ON conversations (workflow_id, id);
-- A step's conversation is written once per execution, whatever redelivery does.
CREATE UNIQUE INDEX conversations_execution_step_agent
    ON conversations (execution_id, step, agent) WHERE execution_id IS NOT NULL;

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id   BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role              TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content           TEXT NOT NULL,
    artifacts         TEXT NOT NULL DEFAULT '[]',
    message_metadata  TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);

CREATE TABLE llm_calls (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id         BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    execution_id            BIGINT REFERENCES executions (id) ON DELETE CASCADE,
    model                   TEXT NOT NULL,
    prompt_tokens           BIGINT NOT NULL DEFAULT 0,
    completion_tokens       BIGINT NOT NULL DEFAULT 0,
    total_tokens            BIGINT NOT NULL DEFAULT 0,
    max_tokens              BIGINT,
    total_tokens_requested  BIGINT,
    response_time_ms        BIGINT NOT NULL DEFAULT 0,
    status                  TEXT NOT NULL
                            CHECK (status IN ('success', 'failed', 'truncated', 'skipped')),
    error_code              TEXT,
    truncated_sections      TEXT NOT NULL DEFAULT '[]',
    prompt_hash             TEXT NOT NULL,
    response_hash           TEXT,
    budget_snapshot         TEXT NOT NULL DEFAULT '{}',
    cost_nanos              BIGINT NOT NULL DEFAULT 0,
    timestamp               TEXT NOT NULL,
    request_data            TEXT NOT NULL DEFAULT '{}',
    response_data           TEXT NOT NULL DEFAULT '{}'
);
-- One index per sort of GET /conversations/{id}/llm-calls (ties by id),
-- plus the model filter with the default order and the date range.
CREATE INDEX llm_calls_conv_id_idx     ON llm_calls (conversation_id, id);
CREATE INDEX llm_calls_conv_ts_idx     ON llm_calls (conversation_id, timestamp, id);
CREATE INDEX llm_calls_conv_model_idx  ON llm_calls (conversation_id, model, timestamp, id);
CREATE INDEX llm_calls_conv_tokens_idx ON llm_calls (conversation_id, total_tokens, id);
CREATE INDEX llm_calls_conv_rt_idx     ON llm_calls (conversation_id, response_time_ms, id);
CREATE INDEX llm_calls_conv_cost_idx   ON llm_calls (conversation_id, cost_nanos, id);
-- The response cache: a stored response for this prompt in this execution.
CREATE INDEX llm_calls_exec_prompt_idx ON llm_calls (execution_id, prompt_hash) WHERE execution_id IS NOT NULL;

-- Calls per model in each conversation, kept with the calls, so that the
-- total of a model-filtered listing is one row read, not a count.
CREATE TABLE llm_call_model_counts (
    conversation_id  BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    model            TEXT NOT NULL,
    calls            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, model)
);

CREATE TABLE code_files (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id      BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    conversation_id  BIGINT REFERENCES conversations (id) ON DELETE CASCADE,
    execution_id     BIGINT REFERENCES executions (id) ON DELETE CASCADE,
    path             TEXT NOT NULL,
    language         TEXT,
    content          TEXT NOT NULL,
    checksum         TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX code_files_workflow_idx ON code_files (workflow_id, id);
CREATE UNIQUE INDEX code_files_conversation_path
    ON code_files (conversation_id, path) WHERE conversation_id IS NOT NULL;

-- The per-workflow append-only log; id is the workflow's own sequence,
-- allocated under the workflow row's lock so commit order = id order.
CREATE TABLE events (
    workflow_id   BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    id            BIGINT NOT NULL,
    execution_id  BIGINT,
    type          TEXT NOT NULL,
    data          TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    PRIMARY KEY (workflow_id, id)
);

CREATE TABLE pull_requests (
    workflow_id  BIGINT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    repository   TEXT NOT NULL,
    number       BIGINT NOT NULL,
    url          TEXT NOT NULL,
    state        TEXT NOT NULL,
    title        TEXT NOT NULL,
    head_branch  TEXT NOT NULL,
    base_branch  TEXT NOT NULL,
    head_sha     TEXT,
    merged       INTEGER NOT NULL DEFAULT 0,
    draft        INTEGER NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL
);
CREATE INDEX pull_requests_repo_number_idx ON pull_requests (repository, number);
CREATE INDEX pull_requests_repo_branch_idx ON pull_requests (repository, head_branch);

CREATE TABLE checks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id   BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    external_id   BIGINT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'check_run' CHECK (kind IN ('check_run', 'check_suite')),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    conclusion    TEXT,
    details_url   TEXT,
    started_at    TEXT,
    completed_at  TEXT,
    head_sha      TEXT,
    updated_at    TEXT NOT NULL,
    CONSTRAINT checks_workflow_external_key UNIQUE (workflow_id, kind, external_id)
);

CREATE TABLE diffs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id    BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    path           TEXT NOT NULL,
    previous_path  TEXT,
    status         TEXT NOT NULL CHECK (status IN ('added', 'modified', 'removed', 'renamed')),
    additions      BIGINT NOT NULL DEFAULT 0,
    deletions      BIGINT NOT NULL DEFAULT 0,
    patch          TEXT,
    updated_at     TEXT NOT NULL,
    CONSTRAINT diffs_workflow_path_key UNIQUE (workflow_id, path)
);

CREATE TABLE artifacts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id  BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    external_id  TEXT,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    uri          TEXT NOT NULL,
    checksum     TEXT,
    size_bytes   BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);
CREATE INDEX artifacts_workflow_kind_idx ON artifacts (workflow_id, kind, id);
CREATE UNIQUE INDEX artifacts_workflow_external
    ON artifacts (workflow_id, external_id) WHERE external_id IS NOT NULL;

-- Every GitHub delivery id seen, so that a redelivery is not applied twice.
CREATE TABLE webhook_deliveries (
    delivery_id  TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    workflow_id  BIGINT REFERENCES workflows (id) ON DELETE SET NULL,
    status       TEXT NOT NULL,
    received_at  TEXT NOT NULL
);

-- The durable local queue (steps, refresh jobs). Cloud deployments use
-- SQS or Service Bus instead.
CREATE TABLE queue_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedup_key     TEXT,
    status        TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'running', 'done', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    visible_at    TEXT NOT NULL,
    locked_by     TEXT,
    locked_until  TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX queue_jobs_ready_idx ON queue_jobs (queue, status, visible_at, id);
CREATE UNIQUE INDEX queue_jobs_dedup ON queue_jobs (queue, dedup_key) WHERE dedup_key IS NOT NULL;
