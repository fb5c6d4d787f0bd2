-- Suggestions served from memory: the model is one versioned snapshot in
-- the database that every replica loads, and every write appends to one
-- ordered change feed that every replica tails (co-purchase increments,
-- stock changes, and later live updates of a watched customer).
-- The per-order model tables are replaced by both.

DROP TABLE model_pairs;
DROP TABLE model_items;
DROP TABLE model_view_pairs;
DROP TABLE model_views;
DROP TABLE model_category_next;

-- A built model. `as_of_seq` is the last change-feed entry the build had
-- seen: a replica loading it applies the feed from the next one.
CREATE TABLE model_snapshots (
    version    BIGINT PRIMARY KEY,
    built_at   BIGINT NOT NULL,
    as_of_seq  BIGINT NOT NULL,
    format     BIGINT NOT NULL,
    -- the encoded model (src/suggest/snapshot.rs), deflate-compressed
    body       BYTEA NOT NULL
);

-- The ordered change feed. `seq` is taken from `change_feed_head` as the
-- last statement of each writing transaction, so entries become visible in
-- `seq` order with no gaps, on both backends.
CREATE TABLE change_feed (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    -- basket, product, event, order, return, ticket, customer, consent,
    -- feedback
    kind        TEXT NOT NULL,
    customer_id TEXT,
    product_id  TEXT,
    -- kind 'basket': "+" or "-" then the order's distinct product ids,
    -- separated by unit separators (no personal data)
    payload     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX change_feed_customer ON change_feed (customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE change_feed_head (
    id  BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO change_feed_head (id, seq) VALUES (1, 0);

-- Each serving replica's position in the feed, so entries every live
-- replica has applied can be trimmed.
CREATE TABLE change_readers (
    reader_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    seen_at   BIGINT NOT NULL
);

-- The first model snapshot is due at once, whenever the old tables were
-- last rebuilt.
DELETE FROM model_state WHERE name = 'rebuilt_at';
