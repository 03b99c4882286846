//! Where an upload's bytes come from: nx-protocol's [`UploadSource`](nx_protocol::body::UploadSource)
//! with this transport's reader type, and the file I/O that reads it.

use std::io::{Cursor, Read};

use nx_protocol::body::{SourceKind, UploadProgress};
use nx_protocol::error::Error;

/// The reader a one-shot upload source holds.
pub type Reader = Box<dyn Read + Send>;

/// The bytes of an upload: `UploadSource::path(p)`, `UploadSource::bytes(b, name)`, or
/// `UploadSource::reader(Box::new(r), len, name)` (a one-shot reader, not retried).
pub type UploadSource = nx_protocol::body::UploadSource<Reader>;

/// An upload source opened for one attempt: its reader, and its file (for the error that says
/// it changed while it was sent, [`nx_protocol::body::SourceChanged`]).
pub(crate) struct Opened {
    /// The bytes, from the start.
    pub(crate) reader: Reader,
    /// The file, when the source is one.
    pub(crate) path: Option<std::path::PathBuf>,
}

/// The source's length in bytes.
pub(crate) fn len(source: &UploadSource) -> Result<u64, Error> {
    match source.kind() {
        SourceKind::Path(path) => std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", path.display()), e)),
        SourceKind::Bytes(bytes) => Ok(bytes.len() as u64),
        SourceKind::Reader(_, len) => Ok(*len),
    }
}

/// The source from its start, its reader reporting to the source's progress callback if any.
pub(crate) fn open(source: &mut UploadSource) -> Result<Opened, Error> {
    let reader = open_kind(source)?;
    let reader = match source.progress_callback().cloned() {
        None => reader,
        Some(progress) => Box::new(Progressing {
            inner: reader,
            done: 0,
            total: len(source)?,
            progress,
        }),
    };
    Ok(Opened {
        reader,
        path: source.path_of().map(std::path::Path::to_path_buf),
    })
}

/// A reader that reports how much it has yielded.
struct Progressing {
    inner: Reader,
    done: u64,
    total: u64,
    progress: UploadProgress,
}

impl Read for Progressing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done += n as u64;
            (self.progress)(self.done, self.total);
        }
        Ok(n)
    }
}

fn open_kind(source: &mut UploadSource) -> Result<Reader, Error> {
    match source.kind_mut() {
        SourceKind::Path(path) => std::fs::File::open(&*path)
            .map(|f| Box::new(f) as Reader)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e)),
        SourceKind::Bytes(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
        SourceKind::Reader(reader, _) => reader
            .take()
            .ok_or_else(|| Error::Config("a one-shot upload reader cannot be sent twice".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(mut opened: Opened) -> Vec<u8> {
        let mut out = Vec::new();
        opened.reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn bytes_and_paths_reopen_a_reader_does_not() {
        let mut bytes = UploadSource::bytes(&b"hello"[..], "a.txt");
        assert!(bytes.reopenable());
        assert_eq!(len(&bytes).unwrap(), 5);
        assert_eq!(read(open(&mut bytes).unwrap()), b"hello");
        assert_eq!(read(open(&mut bytes).unwrap()), b"hello");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bin");
        std::fs::write(&path, b"on disk").unwrap();
        let mut file = UploadSource::path(&path);
        assert_eq!(file.file_name(), "b.bin");
        assert!(file.reopenable());
        assert_eq!(len(&file).unwrap(), 7);
        assert_eq!(read(open(&mut file).unwrap()), b"on disk");
        assert_eq!(read(open(&mut file).unwrap()), b"on disk");
        // The file is named for the error that says it changed; bytes and readers have none.
        assert_eq!(open(&mut file).unwrap().path, Some(path));
        assert_eq!(open(&mut bytes).unwrap().path, None);

        let mut once = UploadSource::reader(Box::new(Cursor::new(b"xy".to_vec())), 2, "c");
        assert!(!once.reopenable());
        assert_eq!(len(&once).unwrap(), 2);
        assert_eq!(read(open(&mut once).unwrap()), b"xy");
        assert!(matches!(open(&mut once), Err(Error::Config(_))));
        assert_eq!(
            format!("{once:?}"),
            r#"UploadSource { kind: "Reader(2 bytes)", file_name: "c" }"#
        );
    }

    #[test]
    fn a_missing_file_is_a_local_io_error() {
        let missing = UploadSource::path("/nonexistent/nx-blocking/upload.bin");
        assert!(matches!(len(&missing), Err(Error::Io { .. })));
    }
}
