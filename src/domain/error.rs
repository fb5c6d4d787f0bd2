//! The one error type of the core, and field violations for bad input.

use std::fmt;

/// One problem with one named field of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `lines[2].quantity`.
    pub field: String,
    /// Why it is wrong, in plain words.
    pub description: String,
}

/// Longest field path kept in a violation.
pub const MAX_FIELD_PATH: usize = 200;
/// Longest description kept in a violation.
pub const MAX_DESCRIPTION: usize = 300;
/// Most violations kept for one item.
pub const MAX_VIOLATIONS: usize = 50;

/// Collects field violations while parsing a whole item, so the caller hears
/// about every bad field at once rather than one per round trip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A collection holding one violation.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, description);
        v
    }

    /// Records a violation. Paths and descriptions are clipped (to
    /// [`MAX_FIELD_PATH`] and [`MAX_DESCRIPTION`] characters), and at most
    /// [`MAX_VIOLATIONS`] are kept: a description that quotes input never
    /// makes an error as large as the input.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.0.len() >= MAX_VIOLATIONS {
            return;
        }
        let (field, description) = (field.into(), description.into());
        self.0.push(FieldViolation {
            field: super::clip(&field, MAX_FIELD_PATH).into_owned(),
            description: super::clip(&description, MAX_DESCRIPTION).into_owned(),
        });
    }

    /// Keeps the value of `result`, or records its error against `field`.
    pub fn check<T, E: fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Moves the violations of a nested item under `prefix`.
    pub fn absorb(&mut self, prefix: &str, nested: Violations) {
        for v in nested.0 {
            self.add(format!("{prefix}.{}", v.field), v.description);
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded violations.
    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.0.iter()
    }

    /// Consumes the collection.
    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }

    /// `Ok(build())` when nothing was recorded, else the violations.
    ///
    /// `build` runs only when every checked field parsed.
    /// The value `build` makes from the parsed fields, when no field was
    /// violated. `build` takes each field it needs with `?`: a field
    /// missing without a violation (a bug in its check) answers a
    /// violation naming the request, never a panic.
    pub fn build<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Violations> {
        if !self.is_empty() {
            return Err(self);
        }
        build().ok_or_else(|| Violations::single("request", "could not be read whole"))
    }

    /// Like [`Violations::build`], for a `build` that cannot fail.
    pub fn finish<T>(self, build: impl FnOnce() -> T) -> Result<T, Violations> {
        if self.is_empty() {
            Ok(build())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

/// Every way a core operation can fail. The API layer maps each variant to a
/// gRPC code exhaustively; only the messages of the client-facing variants
/// ever reach a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input was malformed; each violation names its field.
    #[error("invalid argument: {0}")]
    InvalidArgument(Violations),
    /// Nothing is known under the given identity or id.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is well formed but conflicts with what is stored (for
    /// example linking an identity that belongs to another customer). The
    /// message is safe to show to the caller.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The database could not be reached; retrying later may succeed.
    #[error("unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The database is reachable but every connection stayed busy for the
    /// whole acquire timeout: backpressure, retry with backoff.
    #[error("busy")]
    Busy(#[source] anyhow::Error),
    /// A bug or an unexpected storage failure. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// Shorthand for a single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(Violations::single(field, description))
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_missing_without_a_violation_is_a_violation_not_a_panic() {
        let missing: Option<u32> = None;
        let err = Violations::new()
            .build(|| Some(missing? + 1))
            .expect_err("incomplete");
        let v = err.into_vec();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "request");
        assert_eq!(Violations::new().build(|| Some(2)), Ok(2));
        // With a violation, `build` never runs.
        let named = Violations::single("limit", "is too large");
        let err = named
            .build(|| -> Option<u32> { unreachable!("build ran") })
            .expect_err("violated");
        assert_eq!(err.into_vec()[0].field, "limit");
    }
}
