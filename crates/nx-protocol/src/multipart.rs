//! `multipart/form-data` bodies (RFC 7578) whose last part is streamed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::body::StreamedBody;

/// Builds a form whose text fields come first and whose one file part comes last, so that the
/// file can be streamed between the fixed head and tail.
///
/// ```
/// use nx_protocol::multipart::Form;
/// let form = Form::new("XyZ")
///     .text("messaging_product", "whatsapp")
///     .file("file", "a.txt", "text/plain", 5);
/// assert_eq!(form.content_type(), "multipart/form-data; boundary=XyZ");
/// let body = form.finish();
/// assert_eq!(
///     std::str::from_utf8(&body.head).unwrap(),
///     "--XyZ\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
///      --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
///      Content-Type: text/plain\r\n\r\n"
/// );
/// assert_eq!(&body.tail[..], b"\r\n--XyZ--\r\n");
/// assert_eq!(body.content_length(), (body.head.len() + 5 + body.tail.len()) as u64);
/// ```
#[derive(Debug)]
pub struct Form {
    boundary: String,
    head: BytesMut,
    /// The file part's length, once it is added.
    file_len: Option<u64>,
}

impl Form {
    /// A form with this boundary. The boundary must not occur in any part; transports pass a
    /// random one (see [`crate::multipart::boundary_from`]).
    pub fn new(boundary: impl Into<String>) -> Self {
        Self {
            boundary: boundary.into(),
            head: BytesMut::with_capacity(512),
            file_len: None,
        }
    }

    /// The `Content-Type` header value.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Adds a text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.part_header(name, None);
        self.head.put_slice(b"\r\n");
        self.head.put_slice(value.as_bytes());
        self.head.put_slice(b"\r\n");
        self
    }

    /// Adds the streamed file part (call last).
    pub fn file(mut self, name: &str, file_name: &str, content_type: &str, len: u64) -> Self {
        self.part_header(name, Some(file_name));
        self.head.put_slice(b"Content-Type: ");
        self.head.put_slice(content_type.as_bytes());
        self.head.put_slice(b"\r\n\r\n");
        self.file_len = Some(len);
        self
    }

    fn part_header(&mut self, name: &str, file_name: Option<&str>) {
        self.head.put_slice(b"--");
        self.head.put_slice(self.boundary.as_bytes());
        self.head
            .put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        put_quoted(&mut self.head, name);
        self.head.put_slice(b"\"");
        if let Some(file_name) = file_name {
            self.head.put_slice(b"; filename=\"");
            put_quoted(&mut self.head, file_name);
            self.head.put_slice(b"\"");
        }
        self.head.put_slice(b"\r\n");
    }

    /// The head, the streamed part's length and the closing boundary.
    pub fn finish(self) -> StreamedBody {
        // The file's bytes end without a line break; text fields already end with one.
        let tail = match self.file_len {
            Some(_) => format!("\r\n--{}--\r\n", self.boundary),
            None => format!("--{}--\r\n", self.boundary),
        };
        StreamedBody {
            head: self.head.freeze(),
            stream_len: self.file_len.unwrap_or(0),
            tail: Bytes::from(tail),
        }
    }
}

/// Escapes a quoted-string value the way browsers do (WHATWG HTML: `"` -> `%22`,
/// CR -> `%0D`, LF -> `%0A`), and, going further, every other ASCII control character and the
/// backslash as `%XX`, so a file name can never break out of its header or carry invisible
/// bytes. The backslash, which browsers send as it is, is escaped because a quoted-string
/// reads it as the start of a quoted-pair (RFC 9110 5.6.4): a name ending in `\` would swallow
/// the closing quote (multer, the sandbox's parser, then loses the name; Go's `mime` refuses
/// the header), and a strict reader takes `a\b` as `ab`. Other bytes, UTF-8 above ASCII among
/// them, go as they are (RFC 7578 4.2: UTF-8 names, no `filename*`); so does `%`, as browsers
/// send it.
fn put_quoted(out: &mut BytesMut, value: &str) {
    for &b in value.as_bytes() {
        if b == b'"' || b == b'\\' || b.is_ascii_control() {
            out.put_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.put_u8(b);
        }
    }
}

/// A boundary built from 128 bits the caller supplies (nx-protocol has no random source).
/// Transports pass random bits; 32 hex digits after a fixed prefix cannot plausibly occur in a file.
///
/// ```
/// assert_eq!(nx_protocol::multipart::boundary_from(1), "nx-sdk-00000000000000000000000000000001");
/// ```
pub fn boundary_from(random: u128) -> String {
    format!("nx-sdk-{random:032x}")
}

#[cfg(test)]
mod tests {
    use super::Form;

    /// The file part's `Content-Disposition` line for `file_name`.
    fn disposition(file_name: &str) -> String {
        let head = Form::new("B")
            .file("file", file_name, "text/plain", 0)
            .finish()
            .head;
        let head = String::from_utf8(head.to_vec()).expect("the head is UTF-8");
        let (line, rest) = head
            .strip_prefix("--B\r\n")
            .and_then(|h| h.split_once("\r\n"))
            .expect("a part header");
        // The name cannot end the part's header early or add one.
        assert_eq!(rest, "Content-Type: text/plain\r\n\r\n", "{file_name:?}");
        line.to_owned()
    }

    #[test]
    fn file_names_cannot_leave_their_quoted_string() {
        for (name, sent) in [
            ("q3.pdf", "q3.pdf"),
            (r#"say "hi".pdf"#, "say %22hi%22.pdf"),
            (
                "a\r\nContent-Type: text/html\r\n\r\n<b>.pdf",
                "a%0D%0AContent-Type: text/html%0D%0A%0D%0A<b>.pdf",
            ),
            ("tab\there\0\x7f.txt", "tab%09here%00%7F.txt"),
            ("dir\\", "dir%5C"),
            (r"a\b.txt", "a%5Cb.txt"),
            ("100%.txt", "100%.txt"),
            ("牛小信 😀.pdf", "牛小信 😀.pdf"),
            // A C1 control is not ASCII: its UTF-8 bytes cannot end a line or the string.
            ("a\u{85}b", "a\u{85}b"),
        ] {
            assert_eq!(
                disposition(name),
                format!("Content-Disposition: form-data; name=\"file\"; filename=\"{sent}\""),
                "{name:?}"
            );
        }
    }
}
