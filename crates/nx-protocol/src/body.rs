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

    /// A reader that yields exactly `len` bytes, sent as `file_name` (fewer, or more, fails the
    /// upload with [`SourceChanged`], as a file that changes does).
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

/// An upload source that did not hold, while it was sent, the length declared when the request
/// was built (the `Content-Length`, and the multipart part's size). The request was abandoned
/// before its last bytes went out, so the server cannot take it for a whole upload, and the
/// call is not retried: a new attempt would send a file other than the one measured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error(
    "the upload source{} changed while it was sent: {declared} bytes were declared, {found}; the upload was abandoned before its end, nothing was accepted; upload it again once it no longer changes",
    path_text(.path)
)]
pub struct SourceChanged {
    /// The file, when the source is one.
    pub path: Option<std::path::PathBuf>,
    /// The length the request declared.
    pub declared: u64,
    /// What was found instead.
    pub found: FoundLength,
}

fn path_text(path: &Option<std::path::PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

/// What a [`SourceChanged`] source held instead of its declared length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoundLength {
    /// It ended after this many bytes.
    Shorter(u64),
    /// It went on after the declared length: more than that many bytes.
    Longer,
}

impl std::fmt::Display for FoundLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoundLength::Shorter(seen) => write!(f, "it ended after {seen}"),
            FoundLength::Longer => f.write_str("it held more"),
        }
    }
}

impl SourceChanged {
    /// The same, naming `path` (the driver, which knows the source, adds it).
    pub fn at(mut self, path: Option<&std::path::Path>) -> Self {
        self.path = path.map(std::path::Path::to_path_buf);
        self
    }
}

impl<R> UploadSource<R> {
    /// The file, when the source is one.
    pub fn path_of(&self) -> Option<&std::path::Path> {
        match &self.kind {
            SourceKind::Path(p) => Some(p),
            _ => None,
        }
    }
}

/// The rule both transports read a streamed part by: exactly the declared length, and then
/// the source's end. A source that ends early, or yields one byte more, changed since it was
/// measured ([`SourceChanged`]).
///
/// The read that completes the declared length is followed by one more (a probe, of one byte)
/// **before** its bytes are handed on: when the probe finds more, the last bytes, and a form's
/// closing boundary, are never sent, so the body stays short of its `Content-Length` and the
/// server cannot accept it. (A source that grows after the probe found its end was whole when
/// its last byte was read: what is sent is what it held.)
///
/// ```
/// use nx_protocol::body::{FoundLength, LengthCheck, Read};
/// let mut check = LengthCheck::new(5);
/// assert_eq!(check.want(64), 5);
/// assert_eq!(check.read(3), Ok(Read::Deliver));
/// assert_eq!(check.want(64), 2);
/// assert_eq!(check.read(2), Ok(Read::ProbeThenDeliver));
/// assert_eq!(check.probed(0), Ok(()));
/// assert!(check.is_done());
///
/// let mut grown = LengthCheck::new(5);
/// assert_eq!(grown.read(5), Ok(Read::ProbeThenDeliver));
/// assert_eq!(grown.probed(1).unwrap_err().found, FoundLength::Longer);
///
/// let mut shrunk = LengthCheck::new(5);
/// assert_eq!(shrunk.read(3), Ok(Read::Deliver));
/// let changed = shrunk.read(0).unwrap_err();
/// assert_eq!((changed.declared, changed.found), (5, FoundLength::Shorter(3)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthCheck {
    declared: u64,
    seen: u64,
}

/// What a driver does with the bytes of a read ([`LengthCheck::read`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Hand them on.
    Deliver,
    /// They complete the declared length: read once more (one byte, [`LengthCheck::probed`])
    /// and hand them on only if that finds the end.
    ProbeThenDeliver,
}

impl LengthCheck {
    /// For a part of `declared` bytes.
    pub fn new(declared: u64) -> Self {
        Self { declared, seen: 0 }
    }

    /// How many bytes to ask the source for with a buffer of `room`: never past the declared
    /// length (0 once it is read).
    pub fn want(&self, room: usize) -> usize {
        usize::try_from(self.declared - self.seen).map_or(room, |left| left.min(room))
    }

    /// Whether the declared length was read (and its end found, if a probe was asked for).
    pub fn is_done(&self) -> bool {
        self.seen == self.declared
    }

    /// A read of at most [`LengthCheck::want`] bytes returned `n`.
    pub fn read(&mut self, n: usize) -> Result<Read, SourceChanged> {
        if n == 0 && !self.is_done() {
            return Err(self.changed(FoundLength::Shorter(self.seen)));
        }
        self.seen = (self.seen + n as u64).min(self.declared);
        Ok(if self.is_done() {
            Read::ProbeThenDeliver
        } else {
            Read::Deliver
        })
    }

    /// The probe after the declared length returned `n` bytes: any is a change.
    pub fn probed(&self, n: usize) -> Result<(), SourceChanged> {
        if n == 0 {
            Ok(())
        } else {
            Err(self.changed(FoundLength::Longer))
        }
    }

    fn changed(&self, found: FoundLength) -> SourceChanged {
        SourceChanged {
            path: None,
            declared: self.declared,
            found,
        }
    }
}
