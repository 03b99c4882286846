//! Where downloaded bytes go: any `Write`, or a temporary file that becomes the target file only
//! once every check has passed. Shared by NXCloud downloads and On-Premises retrieves.

use std::io::Write;
use std::path::{Path, PathBuf};

use nx_protocol::download::Writeback;
use nx_protocol::error::Error;

/// Where a streamed answer goes: nowhere (a call read whole), a caller's writer, or a fresh
/// temporary file per attempt that becomes the file at the path once every check has passed.
pub(crate) enum Target<'a, W: ?Sized> {
    None,
    Writer(&'a mut W),
    Path(&'a Path),
}

impl Target<'_, std::fs::File> {
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
    /// Creates the temporary file in `target`'s directory (so the rename is atomic).
    pub(crate) fn create(target: &Path) -> Result<Self, Error> {
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
        Ok(Self {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The writer of the download: the file, starting its writeback every
    /// [`WRITEBACK_INTERVAL`](nx_protocol::download::WRITEBACK_INTERVAL) so the fsync of
    /// [`TempFile::commit`] is short.
    pub(crate) fn writer(&mut self) -> WritingBack<'_> {
        WritingBack {
            file: self.temp.as_file_mut(),
            writeback: Writeback::new(),
        }
    }

    /// Flushes and syncs the file, then renames it to the target.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", self.target.display()), e);
        self.temp
            .as_file_mut()
            .flush()
            .map_err(|e| io("writing", e))?;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| io("syncing", e))?;
        let target = self.target.clone();
        self.temp.persist(&target).map(drop).map_err(|e| {
            Error::io(
                format!("renaming the download into {}", target.display()),
                e.error,
            )
        })
    }
}

/// The temporary file as written: every write goes to the file, and each finished stretch of
/// [`Writeback`] is handed to the disk without waiting for it.
pub(crate) struct WritingBack<'a> {
    file: &'a mut std::fs::File,
    writeback: Writeback,
}

impl Write for WritingBack<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some((offset, len)) = self.writeback.wrote(n as u64) {
            start_writeback(self.file, offset, len);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting. On Linux,
/// `POSIX_FADV_DONTNEED` does that (it writes dirty pages back, then drops only the pages
/// already clean); a failure only means the fsync has more to do, so it is ignored. Elsewhere,
/// nothing: the fsync writes everything.
pub(crate) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
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
