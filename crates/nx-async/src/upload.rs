//! Where an upload's bytes come from: nx-protocol's [`UploadSource`](nx_protocol::body::UploadSource)
//! with this transport's reader type, and the file I/O that reads it.

use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

use nx_protocol::body::{SourceKind, UploadProgress};
use nx_protocol::error::Error;
use tokio::io::{AsyncRead, ReadBuf};

/// The reader a one-shot upload source holds.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// The bytes of an upload: `UploadSource::path(p)`, `UploadSource::bytes(b, name)`, or
/// `UploadSource::reader(Box::new(r), len, name)` (a one-shot reader, not retried).
pub type UploadSource = nx_protocol::body::UploadSource<Reader>;

/// The source's length in bytes, as a future that holds no borrow of the source: the caller's
/// future stays `Send` whatever the reader (which need not be `Sync`).
pub(crate) fn len(
    source: &UploadSource,
) -> impl std::future::Future<Output = Result<u64, Error>> + Send + 'static {
    let known = match source.kind() {
        SourceKind::Path(path) => Err(path.clone()),
        SourceKind::Bytes(bytes) => Ok(bytes.len() as u64),
        SourceKind::Reader(_, len) => Ok(*len),
    };
    async move {
        match known {
            Ok(len) => Ok(len),
            Err(path) => tokio::fs::metadata(&path)
                .await
                .map(|m| m.len())
                .map_err(|e| Error::io(format!("reading {}", path.display()), e)),
        }
    }
}

/// A reader from the start of the source, reporting to the source's progress callback if any.
pub(crate) async fn open(source: &mut UploadSource) -> Result<Reader, Error> {
    let reader = open_kind(source).await?;
    let Some(progress) = source.progress_callback().cloned() else {
        return Ok(reader);
    };
    // `len`'s future holds no borrow of the source across the await.
    let total = len(source).await?;
    Ok(Box::new(Progressing {
        inner: reader,
        done: 0,
        total,
        progress,
    }))
}

/// A reader that reports how much it has yielded.
struct Progressing {
    inner: Reader,
    done: u64,
    total: u64,
    progress: UploadProgress,
}

impl AsyncRead for Progressing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if matches!(polled, Poll::Ready(Ok(()))) && n > 0 {
            self.done += n as u64;
            (self.progress)(self.done, self.total);
        }
        polled
    }
}

async fn open_kind(source: &mut UploadSource) -> Result<Reader, Error> {
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
