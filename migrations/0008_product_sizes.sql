-- A product's size: its normalised label and size system (alpha, numeric,
-- waist_length, other); both NULL for products without a size.
ALTER TABLE products ADD COLUMN size_label TEXT;
ALTER TABLE products ADD COLUMN size_system TEXT;
