//! Small string checks shared by the routes and the configuration.

/// Whether `s` is non-empty and ASCII digits only.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A URL without its query (which may carry tokens).
pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}
