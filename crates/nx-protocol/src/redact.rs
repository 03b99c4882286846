//! Redaction of URL-bearing text before it is stored in an error: every URL's query (from its
//! `?` on) and any user info (before an `@` in its authority) become [`REDACTED`]. A pre-signed
//! download URL grants access through its query, so text that came from an answer (an excerpt
//! of the body, a parser's complaint, a server's message) goes through [`redact_urls`] where it
//! is stored, and everything that shows it later (`Display`, `Debug`, tracing fields, the CLI)
//! shows the redacted text only.
//!
//! What is taken for a URL is deliberately broad, since the text may be JSON as a server wrote
//! it: any `//` (or JSON's escaped `\/\/`) starts one, whatever comes before it (so a scheme
//! spelled with escapes, or none, is no way around it), and it runs to white space, a quote,
//! `<`, `>`, a backtick or the end (a NUL or an ESC inside does not end it: a hostile answer
//! could otherwise split a signature off its URL). Its query starts at `?` or at JSON's
//! `\u003f`. A query-like text that no `//` precedes is not a URL and is kept.

use std::borrow::Cow;

use crate::secret::REDACTED;

/// What an error keeps of a server's text (its message, a parser's words quoting the answer, a
/// transport's error): [`redact_urls`], then every control character escaped as Rust escapes it
/// (`\u{1b}`, `\r`, `\n`, ...), so that no ESC sequence, CR/LF posing as a new log line, NUL or
/// bell reaches a terminal or a log through a message. Borrowed when there is nothing to change.
pub(crate) fn server_text(text: &str) -> Cow<'_, str> {
    match redact_urls(text) {
        Cow::Borrowed(text) => escape_controls(text),
        Cow::Owned(text) => Cow::Owned(escape_controls(&text).into_owned()),
    }
}

/// `text` with its control characters escaped (see [`server_text`]): for a server's words an
/// error keeps as sent (NXCloud's `message`, Meta's texts), escaped where they are shown.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with the query and user info of every URL in it replaced by [`REDACTED`]; borrowed
/// when there is no URL with either.
///
/// ```
/// use nx_protocol::redact_urls;
/// assert_eq!(
///     redact_urls(r#"{"url":"https://oss.example/a.png?Expires=1&Signature=s1g","x":1}"#),
///     r#"{"url":"https://oss.example/a.png?<redacted>","x":1}"#
/// );
/// assert_eq!(redact_urls("http://u:pw@h:1/p?q#f and more"), "http://<redacted>@h:1/p?<redacted> and more");
/// assert_eq!(redact_urls(r"https:\/\/h\/a\u003fSignature=s"), r"https:\/\/h\/a?<redacted>");
/// assert_eq!(redact_urls("no url here?a=b"), "no url here?a=b");
/// ```
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some((start, marker)) = next_url(text, from) {
        let token_start = start + marker;
        let token_len = url_len(&text[token_start..]);
        let token = &text[token_start..token_start + token_len];
        from = token_start + token_len;
        let Some(redacted) = redact_token(token) else {
            continue;
        };
        out.push_str(&text[copied..token_start]);
        out.push_str(&redacted);
        copied = from;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The next `//` or `\/\/` at or after `from`: its offset and length.
fn next_url(text: &str, from: usize) -> Option<(usize, usize)> {
    let rest = &text[from..];
    let plain = rest.find("//").map(|i| (i, 2));
    let escaped = rest.find(r"\/\/").map(|i| (i, 4));
    let (at, len) = match (plain, escaped) {
        (Some(p), Some(e)) => {
            if e.0 < p.0 {
                e
            } else {
                p
            }
        }
        (p, e) => p.or(e)?,
    };
    Some((from + at, len))
}

/// How many bytes of `rest` (what follows a URL's `//`) belong to the URL.
fn url_len(rest: &str) -> usize {
    rest.char_indices()
        .find(|&(i, c)| {
            c.is_whitespace()
                || matches!(c, '"' | '\'' | '<' | '>' | '`')
                || (c == '\\' && rest[i + 1..].starts_with('"'))
        })
        .map_or(rest.len(), |(i, _)| i)
}

/// A URL after its `//`, with user info and query redacted; `None` when it has neither.
fn redact_token(token: &str) -> Option<String> {
    let query = find_query(token);
    let authority_end = [
        token.find('/'),
        token.find(r"\/"),
        token.find('#'),
        query.map(|(i, _)| i),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(token.len());
    let authority = &token[..authority_end];
    let userinfo = authority.rfind('@');
    if userinfo.is_none() && query.is_none() {
        return None;
    }
    let mut out = String::with_capacity(token.len());
    match userinfo {
        Some(at) => {
            out.push_str(REDACTED);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let path_end = query.map_or(token.len(), |(i, _)| i);
    out.push_str(&token[authority_end..path_end]);
    if query.is_some() {
        out.push('?');
        out.push_str(REDACTED);
    }
    Some(out)
}

/// Where the query starts: the first `?` or JSON-escaped `\u003f`, and the marker's length.
fn find_query(token: &str) -> Option<(usize, usize)> {
    let plain = token.find('?').map(|i| (i, 1));
    let escaped = token
        .as_bytes()
        .windows(6)
        .position(|w| w.eq_ignore_ascii_case(br"\u003f"))
        .map(|i| (i, 6));
    match (plain, escaped) {
        (Some(p), Some(e)) => Some(if e.0 < p.0 { e } else { p }),
        (p, e) => p.or(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_redacted_then_escaped() {
        assert_eq!(
            server_text("bad\u{1b}[2J\r\nforged\0\u{9b} see https://h/p?Signature=s\u{7}"),
            r"bad\u{1b}[2J\r\nforged\u{0}\u{9b} see https://h/p?<redacted>"
        );
        assert!(matches!(server_text("plain words"), Cow::Borrowed(_)));
        assert!(matches!(server_text("tab\there"), Cow::Owned(_)));
    }

    #[test]
    fn queries_and_user_info_are_redacted_wherever_the_url_is() {
        let cases = [
            ("plain text", "plain text"),
            ("see https://h/p", "see https://h/p"),
            (
                "https://h/p?a=1 then https://g?b",
                "https://h/p?<redacted> then https://g?<redacted>",
            ),
            ("'//h/a?Signature=x'", "'//h/a?<redacted>'"),
            (
                "<a href=\"http://h/?s\">",
                "<a href=\"http://h/?<redacted>\">",
            ),
            ("http://h/a?s\\\"x", "http://h/a?<redacted>\\\"x"),
            ("http://h/a?s\0tail\u{1b}x y", "http://h/a?<redacted> y"),
            ("ftp://user@h/x", "ftp://<redacted>@h/x"),
            ("http://h/a@b?c", "http://h/a@b?<redacted>"),
            (
                "https\\u003a//h/x\\u003Fsig=1",
                "https\\u003a//h/x?<redacted>",
            ),
            ("http://ü.example/ä?ö", "http://ü.example/ä?<redacted>"),
            ("////", "////"),
            ("x//", "x//"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_urls(text), expected, "{text:?}");
        }
        assert!(matches!(redact_urls("https://h/p"), Cow::Borrowed(_)));
    }
}
