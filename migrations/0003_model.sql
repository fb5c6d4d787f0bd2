-- The co-purchase model behind suggestions, kept in the database so every
-- replica serves the same model. Counts are over counted (non-cancelled)
-- orders of known customers; live orders update them in their own
-- transaction, and `rebuild-model` recomputes them from the order history
-- (keeping the strongest partners of each product).

CREATE TABLE model_items (
    product_id     TEXT PRIMARY KEY,
    -- orders containing the product
    baskets        BIGINT NOT NULL,
    -- of those, orders of the last 28 days as of the last rebuild, plus
    -- live orders since ("popular now")
    recent_baskets BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX model_items_recent ON model_items (recent_baskets DESC);

-- Orders containing both products; stored in both directions.
CREATE TABLE model_pairs (
    product_a TEXT NOT NULL,
    product_b TEXT NOT NULL,
    baskets   BIGINT NOT NULL,
    PRIMARY KEY (product_a, product_b)
);
CREATE INDEX model_pairs_rank ON model_pairs (product_a, baskets DESC);
