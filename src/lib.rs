//! customer-context: the unified customer view for a retailer's support
//! desk, served over gRPC.
//!
//! The crate is laid out by concern: [`domain`] (validated records, the
//! error type), [`store`] (SQL, SQLite or PostgreSQL), [`ingest`] (import of
//! Segment-shaped files), [`context`] (assembling the agent's view), [`fit`] (customers' sizes), [`curate`] (stylists' curations), [`api`]
//! (thin gRPC adapters), [`startup`] (wiring and serving), [`cli`] (the
//! command line) and [`client`] (the `context` subcommand).

pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod coalesce;
pub mod context;
pub mod curate;
pub mod demo;
pub mod domain;
pub mod fit;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod layers;
pub mod mcp;
pub mod metrics;
pub mod proto;
pub mod reads;
pub mod rng;
pub mod startup;
pub mod store;
pub mod suggest;
pub mod telemetry;
pub mod watch;
pub mod wire;
