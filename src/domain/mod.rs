//! The domain core: validated values and records, and the one error type.
//! Nothing here knows about gRPC or SQL.

mod error;
mod records;
mod values;

pub use error::{Error, FieldViolation, Violations};
pub use records::*;
pub use values::*;
