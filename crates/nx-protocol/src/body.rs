//! Request bodies as nx-protocol hands them to a transport.

use bytes::Bytes;

/// The body of a built request.
///
/// Small bodies are bytes (for JSON, exactly the bytes that were signed). Large ones are
/// [`OutgoingBody::Streamed`]: nx-protocol describes them, the transport copies the caller's
/// source through, so a 100 MB file is never held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutgoingBody {
    /// No body.
    Empty,
    /// A complete body.
    Bytes(Bytes),
    /// `head`, then exactly `stream_len` bytes from the caller's source, then `tail`.
    Streamed(StreamedBody),
}

impl OutgoingBody {
    /// The exact number of bytes that go on the wire (the `Content-Length`).
    pub fn content_length(&self) -> u64 {
        match self {
            OutgoingBody::Empty => 0,
            OutgoingBody::Bytes(b) => b.len() as u64,
            OutgoingBody::Streamed(s) => s.content_length(),
        }
    }
}

/// A body made of fixed bytes around a streamed part: a multipart form with its file part
/// (`head` = the fields and the file part's headers, `tail` = the closing boundary), or a raw
/// upload (both empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedBody {
    /// Bytes sent before the streamed part.
    pub head: Bytes,
    /// How many bytes the streamed part has; a transport must send exactly this many.
    pub stream_len: u64,
    /// Bytes sent after the streamed part.
    pub tail: Bytes,
}

impl StreamedBody {
    /// A raw body of `len` bytes from the caller's source and nothing around it.
    pub fn raw(len: u64) -> Self {
        Self {
            head: Bytes::new(),
            stream_len: len,
            tail: Bytes::new(),
        }
    }

    /// `head + stream_len + tail`.
    pub fn content_length(&self) -> u64 {
        self.head.len() as u64 + self.stream_len + self.tail.len() as u64
    }
}
