//! Text on its way to a terminal: what came from a server, a webhook or a file is untrusted, so
//! human output shows it through [`shown`] (control characters made visible, one line stays one
//! line), and commands printed for a user to paste go through [`command`] (shell-quoted, or not
//! offered as a command at all when a word cannot be pasted safely). `--json` output does not
//! use these: JSON escapes control characters itself and must stay exact.
//!
//! ```text
//! format!("file_name: {}", terminal::shown(&info.file_name))
//! match terminal::command(&["nxcloud", "onprem", "media", "get", id]) { Some(line) => .., None => .. }
//! ```

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal as it is: C0 and C1 control characters and DEL
/// (ESC sequences, CR/LF, NUL, backspace), the Unicode line and paragraph separators, and the
/// bidirectional formatting characters that reorder what is displayed (e.g. U+202E).
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`is_unsafe`] character written as a visible escape (`\n`, `\r`, `\t`,
/// `\0`, else `\u{1b}`); borrowed when there is nothing to escape.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Untrusted text for `format!`: displays as [`escape`] would write it.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a>(&'a str);

/// Wraps untrusted text so that it displays escaped.
pub(crate) fn shown(text: &str) -> Shown<'_> {
    Shown(text)
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// A command line to print for a user to paste: each word shell-quoted where it needs to be
/// (`'...'` for anything beyond `A-Za-z0-9_@%+=:,./-`), so `$(...)`, backticks, `;` and spaces
/// stay data. `None` when a word holds a character no quoting makes safe to print (a control
/// character would reach the terminal, even inside quotes): show that word as data instead.
pub(crate) fn command(words: &[&str]) -> Option<String> {
    if words.iter().any(|w| w.chars().any(is_unsafe)) {
        return None;
    }
    shlex::try_join(words.iter().copied()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_and_lines_stay_lines() {
        assert!(matches!(escape("plain text é"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[2J\r\nhint: run x\0"),
            "a\\u{1b}[2J\\r\\nhint: run x\\0"
        );
        assert_eq!(
            escape("\u{7f}\u{9b}\u{202e}\t"),
            "\\u{7f}\\u{9b}\\u{202e}\\t"
        );
        assert_eq!(shown("x\ny").to_string(), "x\\ny");
        assert!(!escape("\u{1b}\u{85}\u{2028}\r").chars().any(is_unsafe));
        assert!(matches!(
            escape("wamid.牛小信-1"),
            Cow::Borrowed("wamid.牛小信-1")
        ));
        assert_eq!(
            escape("a\u{1b}[2J\r\nb\u{7}\u{9b}c"),
            "a\\u{1b}[2J\\r\\nb\\u{7}\\u{9b}c"
        );
    }

    #[test]
    fn commands_are_quoted_or_refused() {
        assert_eq!(
            command(&["nxcloud", "media", "get", "--id", "abc-123"]).as_deref(),
            Some("nxcloud media get --id abc-123")
        );
        let line = command(&["x", "x$(touch /tmp/p)", "1;touch /tmp/q;", "`id`", "it's"]).unwrap();
        assert_eq!(
            line,
            r#"x 'x$(touch /tmp/p)' '1;touch /tmp/q;' '`id`' "it's""#
        );
        // What a POSIX shell makes of it: the same words, nothing run.
        assert_eq!(
            shlex::split(&line).unwrap(),
            ["x", "x$(touch /tmp/p)", "1;touch /tmp/q;", "`id`", "it's"]
        );
        assert_eq!(command(&["x", "a\u{1b}b"]), None);
        assert_eq!(command(&["x", "a\nb"]), None);
    }
}
