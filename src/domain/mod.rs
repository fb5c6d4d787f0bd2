//! The domain core: validated values and records, and the one error type.
//! Nothing here knows about gRPC or SQL.

mod curation;
mod error;
mod feed;
mod records;
mod size;
mod values;

pub use curation::*;
pub use error::{Error, FieldViolation, Violations};
pub use feed::{BasketChange, Change, ChangeKind, FeedEntry};
pub use records::*;
pub use size::*;
pub use values::*;
