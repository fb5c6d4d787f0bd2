//! customer-context: the unified customer view for a retailer's support
//! desk, served over gRPC, JSON, MCP and a sidebar page.
//!
//! The crate is layered, lowest first: leaves ([`rng`], [`coalesce`],
//! [`telemetry`], [`slot`]), [`domain`], [`store`] and [`watch`], the access log
//! ([`audit`]), [`text_index`], [`fit`], [`reads`], [`suggest`], the core
//! services ([`context`], [`curate`], [`ingest`], [`retention`],
//! [`search`]), the [`desk`] every face reads customers through (shaped
//! for the caller's role, on record), the webhook connectors
//! ([`connect`]), the contract ([`proto`]), [`wire`], [`metrics`], the gate
//! ([`auth`]), the gRPC adapters ([`api`]), the other faces ([`http`],
//! [`mcp`]), [`startup`], and the tools ([`demo`], [`client`],
//! [`generate`], [`bench`], [`cli`]). Each imports only from below its
//! own layer: [`layers`] holds the table and the test that keeps it so;
//! docs/architecture.md walks through it.

#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod coalesce;
pub mod connect;
pub mod context;
pub mod curate;
pub mod demo;
pub mod desk;
pub mod domain;
pub mod fit;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod layers;
pub mod mcp;
pub mod metrics;
pub mod privacy;
pub mod proto;
pub mod reads;
pub mod retention;
pub mod rng;
pub mod search;
pub mod slot;
pub mod startup;
pub mod store;
pub mod suggest;
pub mod telemetry;
pub mod text_index;
pub mod watch;
pub mod wire;
