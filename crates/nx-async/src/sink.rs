//! Where downloaded bytes go: any `AsyncWrite`, or a temporary file that becomes the target file
//! only once every check has passed. Shared by NXCloud downloads and On-Premises retrieves.

use std::io::{IoSlice, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use nx_protocol::download::{SLOW_READ, TEMP_PREFIX, WRITE_PIECE, Writeback};
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

/// Where the driver's pump puts a streamed body's chunks, once the call checked them: the
/// chunks as hyper read them, so a file can be written from them without a copy.
pub(crate) trait Sink {
    /// Takes one checked chunk.
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()>;
}

/// A caller's writer: each chunk is written to it as it comes.
pub(crate) struct Direct<'a, W: ?Sized>(pub(crate) &'a mut W);

impl<W: AsyncWrite + Unpin + ?Sized> Sink for Direct<'_, W> {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.write_all(&chunk).await
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
        let file = temp.as_file().try_clone().map_err(|e| {
            Error::io(
                format!("opening the temporary file for {}", target.display()),
                e,
            )
        })?;
        let writer = WritingBack {
            file: Arc::new(file),
            batch: Vec::with_capacity(BATCH_CHUNKS),
            batched: 0,
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

    /// Writes the last batch and syncs the file (one trip to the blocking pool), then renames
    /// the temporary file to the target.
    pub(crate) async fn commit(self, mut writer: WritingBack) -> Result<(), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", self.target.display()), e);
        writer.settle().await.map_err(|e| io("writing", e))?;
        let batch = std::mem::take(&mut writer.batch);
        let file = writer.file.clone();
        let synced = tokio::task::spawn_blocking(move || {
            write_batch(&file, &batch).map_err(|e| ("writing", e))?;
            file.sync_all().map_err(|e| ("syncing", e))
        })
        .await
        .unwrap_or_else(|e| Err(("writing", std::io::Error::other(e))));
        synced.map_err(|(context, e)| io(context, e))?;
        drop(writer);
        let target = self.target.clone();
        self.temp.persist(&target).map(drop).map_err(|e| {
            Error::io(
                format!("renaming the download into {}", target.display()),
                e.error,
            )
        })
    }
}

/// A batch is written once it holds [`WRITE_PIECE`] bytes, or this many chunks. Each chunk may
/// keep hyper's whole read buffer (up to about 400 KiB) alive, so the count bounds the memory two batches hold (about 6 MiB at worst, 2 MiB for a
/// body that comes in full reads), whatever the chunk sizes a server sends.
const BATCH_CHUNKS: usize = 8;

/// The temporary file as written: the chunks are batched as hyper read them (no copy), and each
/// batch goes to tokio's blocking pool in one trip and one `writev`, with the start of its
/// [`Writeback`] stretch when one is due, while the next batch fills. One batch at most is in
/// flight: a full batch waits for it (a pool trip per chunk, and a copy of every chunk, is what
/// `tokio::fs::File` costs).
pub(crate) struct WritingBack {
    file: Arc<std::fs::File>,
    batch: Vec<Bytes>,
    /// Bytes in `batch`.
    batched: usize,
    writeback: Writeback,
    in_flight: Option<JoinHandle<std::io::Result<()>>>,
}

impl WritingBack {
    /// Waits for the batch in flight, if any.
    async fn settle(&mut self) -> std::io::Result<()> {
        match self.in_flight.take() {
            Some(write) => write
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl Sink for WritingBack {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        // A short chunk means a slow body: the batch goes to the file now, not when a
        // megabyte has come (a fast one comes in hyper's full reads, 256 KiB and more).
        let slow = chunk.len() < SLOW_READ;
        self.batched += chunk.len();
        self.batch.push(chunk);
        if !slow && self.batched < WRITE_PIECE && self.batch.len() < BATCH_CHUNKS {
            return Ok(());
        }
        self.settle().await?;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_CHUNKS));
        let stretch = self.writeback.wrote(self.batched as u64);
        self.batched = 0;
        let file = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_batch(&file, &batch)?;
            if let Some((offset, len)) = stretch {
                start_writeback(&file, offset, len);
            }
            Ok(())
        }));
        Ok(())
    }
}

/// Writes `batch` at the file's position, all of it.
fn write_batch(mut file: &std::fs::File, batch: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// The temporary file's builder: a hidden name ([`TEMP_PREFIX`]), and on Unix the mode a new file
/// gets from the umask (`0o666` less the umask, as `open(2)` applies it), not tempfile's `0o600`,
/// since the file becomes the user's file when renamed.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_write_every_byte_in_order_whatever_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5 * WRITE_PIECE + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        // Full reads, odd sizes, and tiny chunks (batched by count).
        for piece in [400 * 1024, 100_003, 3] {
            let target = dir.path().join(format!("f{piece}"));
            let (temp, mut writer) = TempFile::create(&target).unwrap();
            let data = Bytes::from(data.clone());
            let len = if piece == 3 { 30_000 } else { data.len() };
            for at in (0..len).step_by(piece) {
                writer
                    .put(data.slice(at..(at + piece).min(len)))
                    .await
                    .unwrap();
            }
            temp.commit(writer).await.unwrap();
            assert!(std::fs::read(&target).unwrap() == data[..len], "{piece}");
        }
    }
}
