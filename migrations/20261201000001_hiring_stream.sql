-- A hiring's stream: partial output the hired agent emits while it works, in order. `seq`
-- counts from 1 per hiring; the primary key makes two writers racing for one number collide
-- (the loser takes the next), so the order has no gaps and no duplicates.

CREATE TABLE hiring_chunks (
    hiring_id  TEXT NOT NULL REFERENCES tasks(id),
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hiring_id, seq)
);
