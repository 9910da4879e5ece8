-- Artifacts a provider attaches to a task or hiring, and documents uploaded by clients.
-- Content is kept as text: UTF-8 for text types, base64 (`encoding`) for binary ones.

CREATE TABLE artifacts (
    id            TEXT PRIMARY KEY,
    task_id       TEXT NOT NULL REFERENCES tasks(id),
    uploaded_by   TEXT NOT NULL,
    artifact_type TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    encoding      TEXT NOT NULL,
    content       TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX artifacts_by_task ON artifacts (task_id, created_at);

CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    task_id       TEXT,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    document_type TEXT NOT NULL,
    content       TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX uploads_by_owner ON uploads (owner, created_at);
