//! Who may call, and what they may do: API keys with roles, checked by one
//! gate before any request is decoded.

mod admission;
mod gate;
pub mod keys;
mod roles;

pub use gate::{GateConfig, GateLayer};
pub use roles::{Access, Caller, Permission, Role, access_for};
