//! Where downloaded bytes go: any `AsyncWrite`, or a temporary file that becomes the target file
//! only once every check has passed. Shared by NXCloud downloads and On-Premises retrieves.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use nx_protocol::download::Writeback;
use nx_protocol::error::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Where a streamed answer goes: nowhere (a call read whole), a caller's writer, or a fresh
/// temporary file per attempt that becomes the file at the path once every check has passed.
pub(crate) enum Target<'a, W: ?Sized> {
    None,
    Writer(&'a mut W),
    Path(&'a Path),
}

impl Target<'_, tokio::fs::File> {
    /// No target: the call's answer is read whole.
    pub(crate) fn none() -> Self {
        Target::None
    }
}

impl<W: ?Sized> Target<'_, W> {
    /// Whether a failed attempt's bytes can be taken back (each attempt gets a new temporary
    /// file), so it may be retried whatever it wrote.
    pub(crate) fn rewindable(&self) -> bool {
        matches!(self, Target::Path(_))
    }
}

/// A temporary file beside the target, deleted unless [`TempFile::commit`] renames it into place.
pub(crate) struct TempFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl TempFile {
    /// Creates the temporary file in `target`'s directory (so the rename is atomic) and opens
    /// it for writing.
    pub(crate) fn create(target: &Path) -> Result<(Self, WritingBack), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", target.display()), e);
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = temp_builder().tempfile_in(&dir).map_err(|e| {
            Error::io(
                format!("creating a temporary file beside {}", target.display()),
                e,
            )
        })?;
        keep_mode(&temp, target)
            .map_err(|e| Error::io(format!("keeping the mode of {}", target.display()), e))?;
        let clone = || {
            temp.as_file()
                .try_clone()
                .map_err(|e| io("opening the temporary file for", e))
        };
        let writer = WritingBack {
            file: tokio::fs::File::from_std(clone()?),
            handle: Arc::new(clone()?),
            writeback: Writeback::new(),
            in_flight: None,
        };
        Ok((
            Self {
                temp,
                target: target.to_path_buf(),
            },
            writer,
        ))
    }

    /// Flushes and syncs the file, then renames the temporary file to the target.
    pub(crate) async fn commit(self, writer: WritingBack) -> Result<(), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", self.target.display()), e);
        let WritingBack {
            mut file,
            in_flight,
            ..
        } = writer;
        file.flush().await.map_err(|e| io("writing", e))?;
        if let Some(started) = in_flight {
            // Only ever a hint to the kernel: whatever it did, the fsync below does the rest.
            let _ = started.await;
        }
        file.sync_all().await.map_err(|e| io("syncing", e))?;
        drop(file);
        let target = self.target.clone();
        self.temp.persist(&target).map(drop).map_err(|e| {
            Error::io(
                format!("renaming the download into {}", target.display()),
                e.error,
            )
        })
    }
}

/// The temporary file as written: every write goes to the file (tokio writes on its blocking
/// pool), and each finished stretch of [`Writeback`] is handed to the disk there too, without
/// waiting for it and with at most one such request in flight (a stretch that finds one still
/// running is left to the fsync).
pub(crate) struct WritingBack {
    file: tokio::fs::File,
    /// The same file, for the writeback requests.
    handle: Arc<std::fs::File>,
    writeback: Writeback,
    in_flight: Option<JoinHandle<()>>,
}

impl AsyncWrite for WritingBack {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.file).poll_write(cx, buf))?;
        if let Some((offset, len)) = this.writeback.wrote(n as u64)
            && this.in_flight.as_ref().is_none_or(JoinHandle::is_finished)
        {
            let handle = this.handle.clone();
            this.in_flight = Some(tokio::task::spawn_blocking(move || {
                start_writeback(&handle, offset, len);
            }));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting. On Linux,
/// `POSIX_FADV_DONTNEED` does that (it writes dirty pages back, then drops only the pages
/// already clean); a failure only means the fsync has more to do, so it is ignored. Elsewhere,
/// nothing: the fsync writes everything.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// The temporary file's builder: a hidden `.nx-download-` name, and on Unix the mode a new file
/// gets from the umask (`0o666` less the umask, as `open(2)` applies it), not tempfile's `0o600`,
/// since the file becomes the user's file when renamed.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nx-download-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}

/// A file the download replaces keeps its mode: the temporary file takes it before the rename.
fn keep_mode(temp: &tempfile::NamedTempFile, target: &Path) -> std::io::Result<()> {
    match std::fs::metadata(target) {
        Ok(meta) if meta.is_file() => temp.as_file().set_permissions(meta.permissions()),
        _ => Ok(()),
    }
}
