//! Serde helpers for reading answers leniently where a field's absence must not fail a call.

use serde::{Deserialize, Deserializer};

/// A string that may be `null` or absent (with `#[serde(default)]`), read as empty.
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Like [`null_as_empty`], with any URL's query and user info redacted: for server text that
/// ends up in errors (Meta's error titles and details).
pub(crate) fn redacted_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(redacted(d)?.unwrap_or_default())
}

/// An optional string with any URL's query and user info redacted.
pub(crate) fn redacted<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| crate::redact::redact_urls(&s).into_owned()))
}
