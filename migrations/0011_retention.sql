-- Retention (src/retention.rs): the pruner deletes rows older than each
-- kind's window a small batch at a time, oldest first. These indexes let
-- every batch find its rows without scanning the table.
CREATE INDEX events_occurred ON events (occurred_at);
CREATE INDEX access_log_at ON access_log (at);
CREATE INDEX orders_placed ON orders (placed_at);
CREATE INDEX returns_requested ON returns (requested_at);
CREATE INDEX tickets_updated ON tickets (updated_at);
