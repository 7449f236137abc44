-- The `q` search of GET /conversations/{id}/llm-calls, served by an index:
-- pg_trgm's GIN indexes on the lower-cased request and response text serve
-- the store's `LOWER(column) LIKE '%q%'` (any substring; PostgreSQL's
-- LOWER folds Unicode case). An index is kept in step by the database, so
-- rows written in any way are searchable. pg_trgm is a trusted extension
-- (PostgreSQL 13+): a role that may create in the database may add it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX llm_calls_request_trgm_idx ON llm_calls USING gin (LOWER(request_data) gin_trgm_ops);
CREATE INDEX llm_calls_response_trgm_idx ON llm_calls USING gin (LOWER(response_data) gin_trgm_ops);
