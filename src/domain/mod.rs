//! The domain core: validated values and records, roles and what each may
//! do, key hashing, and the one error type. The lowest layer but the
//! leaves: nothing here knows about SQL, gRPC or any face.

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
