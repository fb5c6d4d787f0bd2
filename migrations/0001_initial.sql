-- customer-context initial schema.
--
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Conventions:
-- * instants are BIGINT milliseconds since the Unix epoch (UTC);
-- * money is BIGINT minor units beside a three-letter currency code;
-- * flags are BIGINT 0/1 (one representation on both backends);
-- * category paths are stored as one string, levels joined by ' > ';
-- * content_hash is a fingerprint of the record as last sent, which tells an
--   identical resend (duplicate) from a change (update).
-- Released migrations are never edited: add a new file instead.

CREATE TABLE products (
    product_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    brand           TEXT NOT NULL,
    category_path   TEXT NOT NULL,
    top_category    TEXT NOT NULL,
    price_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    stock_quantity  BIGINT,
    in_stock        BIGINT NOT NULL,
    group_id        TEXT NOT NULL,
    active          BIGINT NOT NULL,
    url             TEXT NOT NULL,
    image_url       TEXT NOT NULL,
    content_hash    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX products_group ON products (group_id);

CREATE TABLE customers (
    customer_id      TEXT PRIMARY KEY,
    display_name     TEXT NOT NULL DEFAULT '',
    email            TEXT NOT NULL DEFAULT '',
    phone            TEXT NOT NULL DEFAULT '',
    loyalty_id       TEXT NOT NULL DEFAULT '',
    -- as sent by the retailer; NULL when never sent
    customer_since   BIGINT,
    first_seen_at    BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    -- running totals, maintained in the same transaction as each order or
    -- return, so a profile is read in one row however long the history
    order_count      BIGINT NOT NULL DEFAULT 0,
    units_purchased  BIGINT NOT NULL DEFAULT 0,
    units_returned   BIGINT NOT NULL DEFAULT 0,
    last_order_at    BIGINT,
    profile_hash     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Every identity that finds a customer: email, phone, loyalty_id, anonymous_id.
CREATE TABLE identities (
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    linked_at   BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_customer ON identities (customer_id);

-- Lifetime spend, one row per currency the customer paid in.
CREATE TABLE customer_spend (
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    currency    TEXT NOT NULL,
    spend_minor BIGINT NOT NULL,
    PRIMARY KEY (customer_id, currency)
);

-- Units and orders per top-level category ('category') and brand ('brand').
CREATE TABLE customer_affinities (
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    units       BIGINT NOT NULL,
    orders      BIGINT NOT NULL,
    PRIMARY KEY (customer_id, kind, name)
);
CREATE INDEX customer_affinities_rank ON customer_affinities (customer_id, kind, units DESC);

-- Browsing events. customer_id is filled in at ingestion when the event is
-- signed in or its anonymous id is linked, and by LinkIdentity afterwards.
CREATE TABLE events (
    message_id   TEXT PRIMARY KEY,
    customer_id  TEXT,
    anonymous_id TEXT,
    event_type   TEXT NOT NULL,
    product_id   TEXT,
    search_query TEXT,
    channel      TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX events_customer_time ON events (customer_id, occurred_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX events_anonymous_time ON events (anonymous_id, occurred_at DESC) WHERE anonymous_id IS NOT NULL;

CREATE TABLE orders (
    order_id     TEXT PRIMARY KEY,
    customer_id  TEXT,
    anonymous_id TEXT,
    status       TEXT NOT NULL,
    placed_at    BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    total_minor  BIGINT NOT NULL,
    channel      TEXT NOT NULL,
    line_count   BIGINT NOT NULL,
    content_hash BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX orders_customer_time ON orders (customer_id, placed_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX orders_anonymous ON orders (anonymous_id) WHERE anonymous_id IS NOT NULL;

-- Lines keep the product's name, brand and category as they were when
-- ordered, so history reads right even after the catalog changes.
CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no          BIGINT NOT NULL,
    product_id       TEXT NOT NULL,
    quantity         BIGINT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    name             TEXT NOT NULL,
    brand            TEXT NOT NULL,
    category_path    TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE returns (
    return_id       TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason_code     TEXT NOT NULL,
    reason_text     TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    refund_currency TEXT,
    refund_minor    BIGINT,
    content_hash    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX returns_customer_time ON returns (customer_id, requested_at DESC);
CREATE INDEX returns_order ON returns (order_id);

CREATE TABLE return_lines (
    return_id  TEXT NOT NULL REFERENCES returns (return_id) ON DELETE CASCADE,
    line_no    BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no)
);

CREATE TABLE tickets (
    ticket_id    TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    status       TEXT NOT NULL,
    priority     TEXT NOT NULL,
    channel      TEXT NOT NULL,
    order_id     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    content_hash BIGINT NOT NULL
);
CREATE INDEX tickets_customer_open ON tickets (customer_id, updated_at DESC) WHERE status IN ('open', 'pending');
