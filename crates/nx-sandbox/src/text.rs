//! Small string checks shared by the routes and the configuration.

/// Whether `s` is non-empty and ASCII digits only.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A URL without its query (which may carry tokens).
pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}

/// A URL as it may be shown (messages, `Debug`): without its query and fragment, and with any
/// user info (`user:password@`) replaced by `<redacted>@`.
pub(crate) fn shown_url(url: &str) -> String {
    let url = strip_query(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_hold_no_credentials() {
        assert_eq!(
            shown_url("http://u:p@127.0.0.1:9/hook?token=t#f"),
            "http://<redacted>@127.0.0.1:9/hook"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9/a@b?x=1"),
            "http://127.0.0.1:9/a@b"
        );
        assert_eq!(shown_url("not a url?q"), "not a url");
    }
}
