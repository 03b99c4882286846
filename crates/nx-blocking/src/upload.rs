//! Where an upload's bytes come from.

use std::fmt;
use std::io::{Cursor, Read};
use std::path::PathBuf;

use bytes::Bytes;
use nx_protocol::client::Error;

pub(crate) type Reader = Box<dyn Read + Send>;

/// The bytes of an upload: a file (reopened for each attempt), bytes in memory, or a one-shot
/// reader of known length (not retried, since it cannot be read twice).
pub struct UploadSource {
    kind: Kind,
    file_name: String,
}

enum Kind {
    Path(PathBuf),
    Bytes(Bytes),
    Reader(Option<Reader>, u64),
}

impl UploadSource {
    /// A file on disk; its name becomes the form's file name.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            kind: Kind::Path(path),
            file_name,
        }
    }

    /// Bytes in memory, sent as `file_name`.
    pub fn bytes(bytes: impl Into<Bytes>, file_name: impl Into<String>) -> Self {
        Self {
            kind: Kind::Bytes(bytes.into()),
            file_name: file_name.into(),
        }
    }

    /// A reader that yields exactly `len` bytes, sent as `file_name`.
    pub fn reader(
        reader: impl Read + Send + 'static,
        len: u64,
        file_name: impl Into<String>,
    ) -> Self {
        Self {
            kind: Kind::Reader(Some(Box::new(reader)), len),
            file_name: file_name.into(),
        }
    }

    /// The file name sent in the form.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Whether a failed attempt can be retried from the start.
    pub fn reopenable(&self) -> bool {
        !matches!(self.kind, Kind::Reader(..))
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> Result<u64, Error> {
        match &self.kind {
            Kind::Path(path) => std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| Error::io(format!("reading {}", path.display()), e)),
            Kind::Bytes(bytes) => Ok(bytes.len() as u64),
            Kind::Reader(_, len) => Ok(*len),
        }
    }

    /// A reader from the start.
    pub(crate) fn open(&mut self) -> Result<Reader, Error> {
        match &mut self.kind {
            Kind::Path(path) => std::fs::File::open(&*path)
                .map(|f| Box::new(f) as Reader)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e)),
            Kind::Bytes(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
            Kind::Reader(reader, _) => reader.take().ok_or_else(|| {
                Error::Config("a one-shot upload reader cannot be sent twice".into())
            }),
        }
    }
}

impl fmt::Debug for UploadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Path(p) => format!("Path({})", p.display()),
            Kind::Bytes(b) => format!("Bytes({} bytes)", b.len()),
            Kind::Reader(_, len) => format!("Reader({len} bytes)"),
        };
        f.debug_struct("UploadSource")
            .field("kind", &kind)
            .field("file_name", &self.file_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(mut reader: Reader) -> Vec<u8> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn bytes_and_paths_reopen_a_reader_does_not() {
        let mut bytes = UploadSource::bytes(&b"hello"[..], "a.txt");
        assert!(bytes.reopenable());
        assert_eq!(bytes.len().unwrap(), 5);
        assert_eq!(read(bytes.open().unwrap()), b"hello");
        assert_eq!(read(bytes.open().unwrap()), b"hello");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bin");
        std::fs::write(&path, b"on disk").unwrap();
        let mut file = UploadSource::path(&path);
        assert_eq!(file.file_name(), "b.bin");
        assert!(file.reopenable());
        assert_eq!(file.len().unwrap(), 7);
        assert_eq!(read(file.open().unwrap()), b"on disk");
        assert_eq!(read(file.open().unwrap()), b"on disk");

        let mut once = UploadSource::reader(Cursor::new(b"xy".to_vec()), 2, "c");
        assert!(!once.reopenable());
        assert_eq!(once.len().unwrap(), 2);
        assert_eq!(read(once.open().unwrap()), b"xy");
        assert!(matches!(once.open(), Err(Error::Config(_))));
        assert_eq!(
            format!("{once:?}"),
            r#"UploadSource { kind: "Reader(2 bytes)", file_name: "c" }"#
        );
    }

    #[test]
    fn a_missing_file_is_a_local_io_error() {
        let missing = UploadSource::path("/nonexistent/nx-blocking/upload.bin");
        assert!(matches!(missing.len(), Err(Error::Io { .. })));
    }
}
