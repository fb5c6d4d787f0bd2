-- Deliveries received from the shop's systems through their webhooks
-- (src/connect): the raw body as it was signed, kept until it is applied
-- and for a bounded time after (retention), so a delivery that could not
-- be mapped can be replayed after a fix. Personal data: erased with the
-- customer (by customer_id, or by the keyed hash of an identity in
-- `subject` / `awaiting` for deliveries not yet tied to a customer).
CREATE TABLE webhook_deliveries (
    delivery_key TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    delivery_id  TEXT,
    event_key    TEXT,
    topic        TEXT NOT NULL,
    resource     TEXT,
    version      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    customer_id  TEXT,
    subject      TEXT,
    awaiting     TEXT,
    attempts     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (source, delivery_id),
    UNIQUE (source, event_key)
);
CREATE INDEX webhook_deliveries_resource ON webhook_deliveries (source, resource, version);
CREATE INDEX webhook_deliveries_customer ON webhook_deliveries (customer_id);
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (subject);
CREATE INDEX webhook_deliveries_awaiting ON webhook_deliveries (awaiting);
CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, received_at);

-- The senders' own ids mapped onto ours: a Shopify inventory item to its
-- variant (a product id), a helpdesk's user to a customer id. Rows naming
-- a customer are erased with them.
CREATE TABLE webhook_links (
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    value       TEXT NOT NULL,
    customer_id TEXT,
    PRIMARY KEY (source, kind, external_id)
);
CREATE INDEX webhook_links_value ON webhook_links (source, kind, value);
CREATE INDEX webhook_links_customer ON webhook_links (customer_id);

-- Shopify inventory levels per location; a variant's stock is their sum.
CREATE TABLE webhook_stock (
    inventory_item_id TEXT NOT NULL,
    location_id       TEXT NOT NULL,
    available         BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (inventory_item_id, location_id)
);
