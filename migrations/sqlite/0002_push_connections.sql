-- WebSocket clients connected through a gateway that holds the socket
-- (API Gateway WebSocket APIs): the function that pushes events finds a
-- workflow's connections here, and how far each has been sent.
CREATE TABLE push_connections (
    connection_id  TEXT PRIMARY KEY,
    workflow_id    BIGINT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    last_event_id  BIGINT NOT NULL,
    connected_at   TEXT NOT NULL
);

CREATE INDEX push_connections_workflow ON push_connections (workflow_id);
