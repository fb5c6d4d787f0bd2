//! Who may call, and what they may do: API keys with roles, checked by one
//! gate before any request is decoded.

mod admission;
mod gate;

pub use gate::{GateConfig, GateLayer};
