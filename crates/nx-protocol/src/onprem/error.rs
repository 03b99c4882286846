//! The On-Premises error shape and Meta's codes.

use std::fmt;

/// A code in Meta's On-Premises code space (not NXCloud's: Meta's 1005 is "access denied").
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MetaCode(i64);

impl MetaCode {
    /// Wraps any code.
    pub const fn new(code: i64) -> Self {
        Self(code)
    }

    /// The number.
    pub const fn get(self) -> i64 {
        self.0
    }
}

/// One object of the On-Premises `errors` array.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetaError {
    /// The code.
    pub code: MetaCode,
    /// A short title.
    #[serde(default)]
    pub title: String,
    /// Details, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {} {}", self.code.0, self.title)?;
        if let Some(details) = &self.details {
            write!(f, ": {details}")?;
        }
        Ok(())
    }
}
