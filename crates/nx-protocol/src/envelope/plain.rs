//! A success envelope of the plain form, read straight from its bytes (issue 20): the form
//! NXCloud answers a call whose `data` is a few strings, as getMedia's
//! `{"code":0,"message":"...","data":{"mime_type":"..","file_name":"..","url":".."}}`.
//!
//! The plain form is a strict subset of what the serde reading
//! ([`crate::operation::parse_in_one_pass`]) accepts, read the same way: UTF-8 text that is one
//! JSON object (any JSON white space between tokens, members in any order) of `code` (the
//! number `0` written as `0`), optionally `message` and `msg` (each a plain string or `null`)
//! and `data`: an object whose members are among the names asked for, each a plain string or
//! `null`. A plain string has no backslash and no control character, so its text is its value.
//! Anything else (an escape, an unknown or repeated member, another number or type, a
//! trailing byte) is `None`, and the answer is read by serde as before: this reader never
//! decides what is refused, or how, and a test compares the two readings on random and
//! hostile answers.

use crate::scan::find_byte;

/// A member of `data`, as [`success_data`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    /// Not in `data`.
    Absent,
    /// `null`.
    Null,
    /// A plain string: its text, borrowed from the answer.
    Str(&'a str),
}

/// The members `names` of a success envelope's `data`, each [`Field::Absent`] when `data` has
/// no such member, if `body` has the plain form (see the module's comment); else `None`.
pub(crate) fn success_data<'a, const N: usize>(
    body: &'a [u8],
    names: [&str; N],
) -> Option<[Field<'a>; N]> {
    // The plain form is ASCII outside its strings, so this checks the UTF-8 of the strings.
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader { text, at: 0 };
    let mut fields = [Field::Absent; N];
    // Which of `code`, `message`, `msg` and `data` were read.
    let mut seen = [false; 4];
    reader.object(&["code", "message", "msg", "data"], |reader, key| {
        // A member repeated: serde refuses it ("duplicate field").
        if std::mem::replace(&mut seen[key], true) {
            return None;
        }
        match key {
            0 => reader.eat(b'0'),
            3 => reader.object(&names, |reader, at| {
                // Never `Absent` once read: a second one is a repeated member.
                if fields[at] != Field::Absent {
                    return None;
                }
                fields[at] = reader.value()?;
                Some(())
            }),
            // The text matters only when the code is not 0.
            _ => reader.value().map(drop),
        }
    })?;
    // Nothing but white space after the envelope.
    if reader.peek().is_some() || !(seen[0] && seen[3]) {
        return None;
    }
    Some(fields)
}

/// A position in the answer's text.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next byte after JSON white space (space, tab, line feed, carriage return), which
    /// is skipped.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&byte) = bytes.get(self.at) {
            // Every token starts above the space: one comparison for them.
            if byte > b' ' || !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// `byte`, after white space.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// An object whose keys are among `keys`, each member read by `member` (given the index of
    /// its key in `keys`, left before its value).
    fn object(
        &mut self,
        keys: &[&str],
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.key(keys)?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key that is one of `keys` (plain strings): its index. The text after the quote is
    /// compared with each, never scanned: a key is `keys[i]` exactly when `keys[i]` and a
    /// quote follow (a key that is none of them, or is spelt with an escape, is `None`).
    fn key(&mut self, keys: &[&str]) -> Option<usize> {
        self.eat(b'"')?;
        let rest = &self.text.as_bytes()[self.at..];
        let at = keys.iter().position(|key| {
            rest.get(key.len()) == Some(&b'"') && rest.starts_with(key.as_bytes())
        })?;
        self.at += keys[at].len() + 1;
        Some(at)
    }

    /// A plain string (no backslash, no control character): its text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        // The first quote ends the string if no backslash or control character comes before
        // it; one search for one byte, then one loop over the text with no early exit, so
        // that it vectorizes.
        let len = find_byte(b'"', rest)?;
        if rest[..len]
            .iter()
            .fold(false, |any, &b| any | (b < 0x20) | (b == b'\\'))
        {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are next to an ASCII byte: character boundaries.
        self.text.get(start..start + len)
    }

    /// A plain string or `null`.
    fn value(&mut self) -> Option<Field<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Field::Str),
            b'n' if self.text.as_bytes()[self.at..].starts_with(b"null") => {
                self.at += 4;
                Some(Field::Null)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Option<[Field<'_>; 2]> {
        success_data(body.as_bytes(), ["a", "b"])
    }

    #[test]
    fn the_plain_form_is_read_with_any_white_space_and_order() {
        use Field::*;
        assert_eq!(
            read(r#"{"code":0,"message":"ok","data":{"a":"x","b":"y"}}"#),
            Some([Str("x"), Str("y")])
        );
        assert_eq!(
            read(
                " \t\r\n{ \"data\" :\n{\"b\"\t: null , \"a\":\"\" } ,\"msg\": null,\"code\" : 0\n}\r\n "
            ),
            Some([Str(""), Null])
        );
        assert_eq!(read(r#"{"code":0,"data":{}}"#), Some([Absent, Absent]));
        assert_eq!(
            read(r#"{"data":{"a":"牛 é /?&=%"},"code":0,"message":"请求成功"}"#),
            Some([Str("牛 é /?&=%"), Absent])
        );
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for body in [
            // Escapes, in a value, a key or the skipped message; raw control characters.
            r#"{"code":0,"data":{"a":"x\/y"}}"#,
            r#"{"code":0,"data":{"\u0061":"x"}}"#,
            r#"{"code":0,"message":"o\nk","data":{}}"#,
            "{\"code\":0,\"data\":{\"a\":\"x\ty\"}}",
            // Another code, or 0 written otherwise.
            r#"{"code":1004,"data":{}}"#,
            r#"{"code":-0,"data":{}}"#,
            r#"{"code":0.0,"data":{}}"#,
            r#"{"code":00,"data":{}}"#,
            r#"{"code":0e0,"data":{}}"#,
            r#"{"code":"0","data":{}}"#,
            // Missing, unknown or repeated members.
            r#"{"data":{}}"#,
            r#"{"code":0}"#,
            r#"{"code":0,"data":null}"#,
            r#"{"code":0,"data":{},"extra":1}"#,
            r#"{"code":0,"data":{"c":"x"}}"#,
            r#"{"code":0,"code":0,"data":{}}"#,
            r#"{"code":0,"data":{},"data":{}}"#,
            r#"{"code":0,"msg":"a","msg":"b","data":{}}"#,
            r#"{"code":0,"data":{"a":"x","a":"y"}}"#,
            r#"{"code":0,"data":{"a":null,"a":null}}"#,
            // Other types where a string is read.
            r#"{"code":0,"message":7,"data":{}}"#,
            r#"{"code":0,"data":{"a":7}}"#,
            r#"{"code":0,"data":{"a":nul}}"#,
            r#"{"code":0,"data":{"a":nullx}}"#,
            r#"{"code":0,"data":{"a":["x"]}}"#,
            // Not one well-formed object.
            r#"{"code":0,"data":{}}x"#,
            r#"{"code":0,"data":{}}{}"#,
            r#"{"code":0,"data":{},}"#,
            r#"{"code":0,"data":{"a":"x",}}"#,
            r#"{"code":0 "data":{}}"#,
            r#"{"code":0,"data":{"a":"x"}"#,
            r#"{"code":0,"data":{"a":"x}}"#,
            "\u{feff}{\"code\":0,\"data\":{}}",
            "{\"code\":0,\u{a0}\"data\":{}}",
            "",
        ] {
            assert_eq!(read(body), None, "{body}");
        }
        // Not UTF-8.
        assert_eq!(
            success_data(b"{\"code\":0,\"data\":{\"a\":\"\xff\"}}", ["a"]),
            None
        );
    }
}
