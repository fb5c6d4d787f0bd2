-- What each customer has bought, per style (product group), so "already
-- bought" can be checked for any candidate by primary key, however long the
-- history. Order lines remember the group the product had when ordered.

ALTER TABLE order_lines ADD COLUMN group_id TEXT;
UPDATE order_lines SET group_id = COALESCE(
    (SELECT p.group_id FROM products p WHERE p.product_id = order_lines.product_id),
    product_id
);

CREATE TABLE customer_groups (
    customer_id    TEXT NOT NULL REFERENCES customers (customer_id),
    group_id       TEXT NOT NULL,
    -- counted orders containing the group
    orders         BIGINT NOT NULL,
    last_bought_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, group_id)
);

INSERT INTO customer_groups (customer_id, group_id, orders, last_bought_at)
SELECT o.customer_id, l.group_id, COUNT(DISTINCT o.order_id), MAX(o.placed_at)
FROM orders o JOIN order_lines l ON l.order_id = o.order_id
WHERE o.customer_id IS NOT NULL AND o.status <> 'cancelled'
GROUP BY o.customer_id, l.group_id;
