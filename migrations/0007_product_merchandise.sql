-- Whether a product is merchandise a shopper may be offered, as the
-- retailer says (1 or 0); NULL leaves it to the deployment's list of
-- non-merchandise categories.
ALTER TABLE products ADD COLUMN merchandise BIGINT;
