//! Request bodies as nx-protocol hands them to a transport.

use bytes::Bytes;

/// The body of a built request.
///
/// Small bodies are bytes (for JSON, exactly the bytes that were signed). Large ones are
/// [`OutgoingBody::Streamed`]: nx-protocol describes them, the transport copies the caller's
/// source through, so a 100 MB file is never held in memory.
///
/// Exhaustive on purpose: a transport sends every kind of body, so a new one must fail to compile rather than fall into a
/// wildcard arm.
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

/// Where an upload's bytes come from, generic over a transport's reader type `R`: a file
/// (reopened for each attempt), bytes in memory, or a one-shot reader of known length (not
/// retried, since it cannot be read twice). The transports wrap it and do the reading.
pub struct UploadSource<R> {
    kind: SourceKind<R>,
    file_name: String,
    progress: Option<UploadProgress>,
}

/// Called as an upload's bytes are read to be sent: (bytes of the source read so far in this
/// attempt, the source's length). A retried upload starts again from 0.
pub type UploadProgress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// The three kinds of [`UploadSource`].
///
/// Exhaustive on purpose: a transport reads every kind of source, so a new one must fail to compile rather than fall into a
/// wildcard arm.
pub enum SourceKind<R> {
    /// A file on disk.
    Path(std::path::PathBuf),
    /// Bytes in memory.
    Bytes(Bytes),
    /// A reader (taken by the first attempt) and the length it yields.
    Reader(Option<R>, u64),
}

impl<R> UploadSource<R> {
    /// A file on disk; its name becomes the form's file name.
    pub fn path(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            kind: SourceKind::Path(path),
            file_name,
            progress: None,
        }
    }

    /// Bytes in memory, sent as `file_name`.
    pub fn bytes(bytes: impl Into<Bytes>, file_name: impl Into<String>) -> Self {
        Self {
            kind: SourceKind::Bytes(bytes.into()),
            file_name: file_name.into(),
            progress: None,
        }
    }

    /// A reader that yields exactly `len` bytes, sent as `file_name`.
    pub fn reader(reader: R, len: u64, file_name: impl Into<String>) -> Self {
        Self {
            kind: SourceKind::Reader(Some(reader), len),
            file_name: file_name.into(),
            progress: None,
        }
    }

    /// Reports the upload's progress to `f` (a progress bar, say): see [`UploadProgress`].
    pub fn progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(std::sync::Arc::new(f));
        self
    }

    /// The progress callback, for the transport that reads the source.
    pub fn progress_callback(&self) -> Option<&UploadProgress> {
        self.progress.as_ref()
    }

    /// The file name sent in the form.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Whether a failed attempt can be retried from the start.
    pub fn reopenable(&self) -> bool {
        !matches!(self.kind, SourceKind::Reader(..))
    }

    /// The kind, for the transport that reads it.
    pub fn kind_mut(&mut self) -> &mut SourceKind<R> {
        &mut self.kind
    }

    /// The kind.
    pub fn kind(&self) -> &SourceKind<R> {
        &self.kind
    }
}

impl<R> std::fmt::Debug for UploadSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            SourceKind::Path(p) => format!("Path({})", p.display()),
            SourceKind::Bytes(b) => format!("Bytes({} bytes)", b.len()),
            SourceKind::Reader(_, len) => format!("Reader({len} bytes)"),
        };
        f.debug_struct("UploadSource")
            .field("kind", &kind)
            .field("file_name", &self.file_name)
            .finish()
    }
}
