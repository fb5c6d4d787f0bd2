//! customer-context: the unified customer view for a retailer's support
//! desk, served over gRPC.
//!
//! The crate is laid out by concern: [`domain`] (validated records, the
//! error type), [`store`] (SQL, SQLite or PostgreSQL), [`ingest`] (import of
//! Segment-shaped files), [`context`] (assembling the agent's view), [`api`]
//! (thin gRPC adapters) and [`startup`] (wiring and serving).

pub mod context;
pub mod domain;
pub mod proto;
pub mod store;
