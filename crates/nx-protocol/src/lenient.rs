//! Serde helpers for reading answers leniently where a field's absence must not fail a call.

use serde::{Deserialize, Deserializer};

/// A string that may be `null` or absent (with `#[serde(default)]`), read as empty.
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}
