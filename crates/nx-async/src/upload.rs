//! Where an upload's bytes come from: nx-protocol's [`UploadSource`](nx_protocol::body::UploadSource)
//! with this transport's reader type, and the file I/O that reads it.

use std::io::Cursor;

use nx_protocol::body::SourceKind;
use nx_protocol::client::Error;
use tokio::io::AsyncRead;

/// The reader a one-shot upload source holds.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// The bytes of an upload: `UploadSource::path(p)`, `UploadSource::bytes(b, name)`, or
/// `UploadSource::reader(Box::new(r), len, name)` (a one-shot reader, not retried).
pub type UploadSource = nx_protocol::body::UploadSource<Reader>;

/// The source's length in bytes.
pub(crate) async fn len(source: &UploadSource) -> Result<u64, Error> {
    match source.kind() {
        SourceKind::Path(path) => tokio::fs::metadata(path)
            .await
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", path.display()), e)),
        SourceKind::Bytes(bytes) => Ok(bytes.len() as u64),
        SourceKind::Reader(_, len) => Ok(*len),
    }
}

/// A reader from the start of the source.
pub(crate) async fn open(source: &mut UploadSource) -> Result<Reader, Error> {
    match source.kind_mut() {
        SourceKind::Path(path) => tokio::fs::File::open(&*path)
            .await
            .map(|f| Box::new(f) as Reader)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e)),
        SourceKind::Bytes(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
        SourceKind::Reader(reader, _) => reader
            .take()
            .ok_or_else(|| Error::Config("a one-shot upload reader cannot be sent twice".into())),
    }
}
