//! Where downloaded bytes go: any `AsyncWrite`, checked chunk by chunk, or a temporary file that
//! becomes the target file only once every check has passed. Shared by NXCloud downloads and
//! On-Premises retrieves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use nx_protocol::client::Error;
use nx_protocol::download::{DownloadCheck, Verified};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use nx_protocol::call::TransferFailure as Failed;
use nx_protocol::download::DownloadOptions;

/// Where downloaded bytes go: a caller's writer, or a fresh temporary file per attempt that
/// becomes the file at the path once every check has passed.
pub(crate) enum Target<'a, W: ?Sized> {
    Writer(&'a mut W),
    Path(&'a Path),
}

/// Streams `body` into `sink` through `check`; `idle` bounds the wait for each chunk.
pub(crate) async fn receive<W: AsyncWrite + Unpin + ?Sized>(
    body: Incoming,
    mut check: DownloadCheck,
    sink: &mut W,
    idle: Duration,
    options: &mut DownloadOptions,
) -> Result<Verified, Failed> {
    let mut body = body;
    let mut wrote = false;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                let error = Error::Timeout {
                    during: "receiving the download",
                    after: idle,
                };
                return Err(Failed { error, wrote });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Failed {
                    error: Error::Transport {
                        source: Box::new(e),
                    },
                    wrote,
                });
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        check.update(&chunk).map_err(|e| Failed {
            error: e.into(),
            wrote,
        })?;
        sink.write_all(&chunk).await.map_err(|e| Failed {
            error: Error::io("writing the download", e),
            wrote: true,
        })?;
        wrote = true;
        options.report(&check);
    }
    sink.flush().await.map_err(|e| Failed {
        error: Error::io("writing the download", e),
        wrote,
    })?;
    check.finish().map_err(|e| Failed {
        error: e.into(),
        wrote,
    })
}

/// A temporary file beside the target, deleted unless [`TempFile::commit`] renames it into place.
pub(crate) struct TempFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl TempFile {
    /// Creates the temporary file in `target`'s directory (so the rename is atomic) and opens
    /// it for writing.
    pub(crate) fn create(target: &Path) -> Result<(Self, tokio::fs::File), Error> {
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
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| io("opening the temporary file for", e))?;
        Ok((
            Self {
                temp,
                target: target.to_path_buf(),
            },
            tokio::fs::File::from_std(file),
        ))
    }

    /// Flushes and syncs `file`, then renames the temporary file to the target.
    pub(crate) async fn commit(self, mut file: tokio::fs::File) -> Result<(), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", self.target.display()), e);
        file.flush().await.map_err(|e| io("writing", e))?;
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
