//! The domain core: validated values and records, and the one error type.
//! Nothing here knows about gRPC or SQL.

mod curation;
mod error;
mod feed;
pub mod keys;
mod records;
mod roles;
mod size;
mod values;

pub use curation::*;
pub use error::{Error, FieldViolation, Violations};
pub use feed::{BasketChange, Change, ChangeKind, FeedEntry};
pub use records::*;
pub use roles::{Access, Caller, Permission, Role, access_for};
pub use size::*;
pub use values::*;
