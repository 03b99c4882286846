//! Text on its way to a terminal: what came from a server, a webhook or a file is untrusted, so
//! human output shows it through [`shown`] (control characters made visible, one line stays one
//! line), and commands printed for a user to paste go through [`command`] (shell-quoted, or not
//! offered as a command at all when a word cannot be pasted safely). `--json` output does not
//! use these: JSON escapes control characters itself and must stay exact.
//!
//! ```text
//! format!("file_name: {}", terminal::shown(info.file_name()))
//! match terminal::command(&["nxcloud", "onprem", "media", "get", id]) { Some(line) => .., None => .. }
//! ```

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal as it is: C0 and C1 control characters and DEL
/// (ESC sequences, CR/LF, NUL, backspace; C1 also as its two UTF-8 bytes, which some terminals
/// read as CSI or OSC), and the format characters that display as nothing or change what is
/// displayed around them: the bidirectional controls that reorder text (U+202E, U+2066-2069,
/// U+061C), the line and paragraph separators, zero-width spaces and joiners (U+200B-200F,
/// U+2060-206F, U+FEFF, U+180E), the soft hyphen, the interlinear annotation marks and the
/// tag characters (U+E0000-E007F, which hide ASCII text from the reader).
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// The most characters of one untrusted string [`shown`] prints: a server's message or file
/// name of a megabyte would otherwise fill the terminal and push what matters out of sight.
pub(crate) const MAX_SHOWN: usize = 1024;

/// `text` with every [`is_unsafe`] character written as a visible escape (`\n`, `\r`, `\t`,
/// `\0`, else `\u{1b}`); borrowed when there is nothing to escape.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// [`escape`], cut after [`MAX_SHOWN`] characters with a note of how much was left out.
fn escape_capped(text: &str) -> Cow<'_, str> {
    let Some((cut, _)) = text.char_indices().nth(MAX_SHOWN) else {
        return escape(text);
    };
    let mut out = escape(&text[..cut]).into_owned();
    out.push_str(&format!("...[{} more bytes]", text.len() - cut));
    Cow::Owned(out)
}

/// Untrusted text for `format!`: displays as [`escape`] would write it, at most
/// [`MAX_SHOWN`] characters of it.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a>(&'a str);

/// Wraps untrusted text so that it displays escaped (and cut after [`MAX_SHOWN`] characters).
pub(crate) fn shown(text: &str) -> Shown<'_> {
    Shown(text)
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_capped(self.0))
    }
}

/// `value` as one line of JSON that is also safe on a terminal: every [`is_unsafe`] character
/// is written as a `\uXXXX` escape (serde_json escapes only C0, `"` and `\\`, so DEL, C1,
/// bidirectional and zero-width characters would otherwise reach the terminal raw). The JSON
/// means exactly the same strings: a reader gets the server's text back byte for byte.
pub(crate) fn json_line(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let mut bytes = Vec::with_capacity(128);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut bytes,
        TerminalSafe,
    ))?;
    // Only whole UTF-8 strings and ASCII escapes were written.
    String::from_utf8(bytes).map_err(serde::ser::Error::custom)
}

/// serde_json's compact output with [`is_unsafe`] characters escaped too.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Whether progress may be drawn on stderr: it is a terminal, and one that moves the cursor
/// (a progress bar redraws itself with `\r` and ESC sequences, which `TERM=dumb` terminals
/// such as Emacs' shell or a CI log viewer show as garbage).
pub(crate) fn stderr_draws_progress() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && !term_is_dumb()
}

/// `TERM=dumb`: a terminal that neither moves the cursor nor shows styles.
pub(crate) fn term_is_dumb() -> bool {
    std::env::var_os("TERM").is_some_and(|term| term == "dumb")
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
    fn invisible_characters_are_shown_and_long_text_is_cut() {
        assert_eq!(
            escape("a\u{200b}b\u{feff}\u{2060}\u{61c}\u{ad}\u{e0041}"),
            "a\\u{200b}b\\u{feff}\\u{2060}\\u{61c}\\u{ad}\\u{e0041}"
        );
        let long = "é".repeat(MAX_SHOWN + 10);
        let shown_long = shown(&long).to_string();
        assert_eq!(
            shown_long,
            format!("{}...[20 more bytes]", "é".repeat(MAX_SHOWN))
        );
        assert_eq!(
            shown(&long[..2 * MAX_SHOWN]).to_string(),
            long[..2 * MAX_SHOWN]
        );
    }

    #[test]
    fn json_lines_escape_what_a_terminal_acts_on_and_mean_the_same() {
        let text = "a\u{1b}]8;;x\u{7}\u{9b}\u{7f}\u{202e}\u{200b}\u{e0041}\né\"\\";
        let line = json_line(&serde_json::json!({ "k\u{85}": text })).unwrap();
        assert_eq!(
            line,
            r#"{"k\u0085":"a\u001b]8;;x\u0007\u009b\u007f\u202e\u200b\udb40\udc41\né\"\\"}"#
        );
        assert!(!line.chars().any(is_unsafe));
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["k\u{85}"], text);
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
