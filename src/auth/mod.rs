//! The gate every call passes before any request is decoded: the API key
//! (roles and hashing live in `domain`), the role's permission for the
//! method, admission (running places, a short queue) and per-key rates.

mod admission;
mod gate;

pub use gate::{GateConfig, GateLayer};
