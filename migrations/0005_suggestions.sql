-- Serving suggestions: replenishable products, the category each model item
-- is diversified and ranked by, co-views and category transitions (rebuilt
-- periodically), feedback on suggestions, and A/B experiments.

-- Days after which a bought product may be suggested again (consumables);
-- NULL when it never comes back.
ALTER TABLE products ADD COLUMN replenish_days BIGINT;

-- The suggestion category of the product (the first two levels of its
-- path), so "popular in a category" is one indexed read. Rows written before
-- this migration get it at the next model rebuild.
ALTER TABLE model_items ADD COLUMN category TEXT NOT NULL DEFAULT '';
-- "Best-sellers now", overall and per category, in one fixed order (ties
-- broken the same way on both backends), read from the index without a
-- sort.
DROP INDEX model_items_recent;
CREATE INDEX model_items_popular ON model_items (recent_baskets DESC, baskets DESC, product_id);
CREATE INDEX model_items_category ON model_items (category, recent_baskets DESC, baskets DESC, product_id);

-- Browsing sessions (one visitor's product views with no gap over 30
-- minutes) viewing each product, and pairs of products viewed in the same
-- session (both directions, strongest partners of each product), from the
-- rebuild.
CREATE TABLE model_views (
    product_id TEXT PRIMARY KEY,
    sessions   BIGINT NOT NULL
);
CREATE TABLE model_view_pairs (
    product_a TEXT NOT NULL,
    product_b TEXT NOT NULL,
    sessions  BIGINT NOT NULL,
    PRIMARY KEY (product_a, product_b)
);

-- For each category, the categories its buyers moved into next (the share
-- of them whose first purchase there came later), from the rebuild.
CREATE TABLE model_category_next (
    from_category TEXT NOT NULL,
    to_category   TEXT NOT NULL,
    share         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (from_category, to_category)
);

-- Bookkeeping of the model: 'rebuilt_at' (last full rebuild) and
-- 'rebuild_claimed_at' (which replica's periodic rebuild is due).
CREATE TABLE model_state (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Feedback on suggestions, one row per suggestion and kind (a resend is a
-- duplicate). Who and what are copied from the signed suggestion id, so a
-- row reads on its own. kind 'purchased' with an order_id is an
-- attribution made when the order was recorded.
CREATE TABLE suggestion_feedback (
    suggestion_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    customer_id   TEXT,
    anonymous_id  TEXT,
    product_id    TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    experiment    TEXT NOT NULL,
    variant       TEXT NOT NULL,
    reason_code   TEXT NOT NULL,
    issued_at     BIGINT NOT NULL,
    occurred_at   BIGINT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    order_id      TEXT,
    PRIMARY KEY (suggestion_id, kind)
);
CREATE INDEX suggestion_feedback_customer ON suggestion_feedback (customer_id, group_id) WHERE customer_id IS NOT NULL;
CREATE INDEX suggestion_feedback_anonymous ON suggestion_feedback (anonymous_id) WHERE anonymous_id IS NOT NULL;
CREATE INDEX suggestion_feedback_variant ON suggestion_feedback (experiment, variant, kind);

-- A/B experiments: named variants (source weights, limits, traffic share)
-- as JSON. At most one experiment is running; changing it needs no restart.
CREATE TABLE experiments (
    name       TEXT PRIMARY KEY,
    variants   TEXT NOT NULL,
    running    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
