-- The `q` search of GET /conversations/{id}/llm-calls, served by an index:
-- FTS5 with the trigram tokenizer matches any substring of three or more
-- characters, case-insensitively (Unicode case folding), in the request
-- and response text. An external-content table (the text is stored once,
-- in llm_calls) kept in step by the database's own triggers, so rows
-- written in any way (the store, an import by SQL, this migration over an
-- existing database) are searchable. Bodies moved to the blob store keep
-- their preview in request_data/response_data, which is what is indexed.
CREATE VIRTUAL TABLE llm_calls_fts USING fts5(
    request_data, response_data,
    content = 'llm_calls', content_rowid = 'id',
    tokenize = 'trigram'
);
INSERT INTO llm_calls_fts (llm_calls_fts) VALUES ('rebuild');

CREATE TRIGGER llm_calls_fts_insert AFTER INSERT ON llm_calls BEGIN
    INSERT INTO llm_calls_fts (rowid, request_data, response_data)
    VALUES (new.id, new.request_data, new.response_data);
END;
CREATE TRIGGER llm_calls_fts_delete AFTER DELETE ON llm_calls BEGIN
    INSERT INTO llm_calls_fts (llm_calls_fts, rowid, request_data, response_data)
    VALUES ('delete', old.id, old.request_data, old.response_data);
END;
CREATE TRIGGER llm_calls_fts_update AFTER UPDATE OF request_data, response_data ON llm_calls BEGIN
    INSERT INTO llm_calls_fts (llm_calls_fts, rowid, request_data, response_data)
    VALUES ('delete', old.id, old.request_data, old.response_data);
    INSERT INTO llm_calls_fts (rowid, request_data, response_data)
    VALUES (new.id, new.request_data, new.response_data);
END;
