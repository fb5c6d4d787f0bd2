-- Stylists' curations (StylistService). A curation's anchor is products
-- (curation_products), a category (anchor_category, a stored category
-- path prefix) or customers (curation_customers); its items are styles in
-- the stylist's order (curation_items).
CREATE TABLE curations (
    curation_id     TEXT PRIMARY KEY,
    request_id      TEXT UNIQUE,
    title           TEXT NOT NULL,
    stylist         TEXT NOT NULL,
    note            TEXT NOT NULL,
    anchor_kind     TEXT NOT NULL,
    anchor_category TEXT,
    starts_at       BIGINT,
    ends_at         BIGINT,
    archived        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX curations_created ON curations (created_at DESC, curation_id DESC);

CREATE TABLE curation_items (
    curation_id TEXT NOT NULL REFERENCES curations (curation_id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    product_id  TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    note        TEXT NOT NULL,
    PRIMARY KEY (curation_id, position)
);

CREATE TABLE curation_products (
    curation_id TEXT NOT NULL REFERENCES curations (curation_id) ON DELETE CASCADE,
    product_id  TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    PRIMARY KEY (curation_id, product_id)
);
CREATE INDEX curation_products_group ON curation_products (group_id);

-- Personal data: erased with the customer.
CREATE TABLE curation_customers (
    curation_id TEXT NOT NULL REFERENCES curations (curation_id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (curation_id, customer_id)
);
CREATE INDEX curation_customers_customer ON curation_customers (customer_id);

-- Which curation a suggestion came from (NULL for computed ones).
ALTER TABLE suggestion_feedback ADD COLUMN curation_id TEXT;
