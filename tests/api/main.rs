//! Integration tests through the generated gRPC client, each against a
//! fresh database, on SQLite and on PostgreSQL (the same cases: this is the
//! backends' contract suite).

mod bounds;
mod concurrency;
mod curations;
mod fit;
mod fixtures;
mod generate;
mod harness;
mod http;
mod ingest;
mod lookups;
mod mcp;
mod model;
mod operations;
mod outage;
mod platform;
mod replicas;
mod residue;
mod search;
mod sidebar;
mod slow;
mod stylist_page;
mod suggest_props;
mod suggestions;
mod trust;
mod watch;
mod webhooks;
