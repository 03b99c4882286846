//! Where downloaded bytes go: any `Write`, or a temporary file that becomes the target file only
//! once every check has passed. Shared by NXCloud downloads and On-Premises retrieves.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use nx_protocol::download::{SLOW_READ, TEMP_PREFIX, WRITE_PIECE, Writeback};
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

/// Where the driver's pump puts a streamed body: it reads into [`Sink::buf`] (straight from
/// ureq, no copy of ours), has the call check what it read, then hands it over with
/// [`Sink::filled`].
pub(crate) trait Sink {
    /// Where the next read goes (never empty).
    fn buf(&mut self) -> &mut [u8];

    /// The first `n` bytes of the last [`Sink::buf`] were read and passed the checks.
    fn filled(&mut self, n: usize) -> std::io::Result<()>;
}

/// A caller's writer: each read is written at once (the caller sees the bytes as they come).
/// The buffer is larger than ureq's 128 KiB input buffer, so each read takes all ureq holds and
/// becomes one write.
pub(crate) struct Direct<'a, W: ?Sized> {
    sink: &'a mut W,
    buf: Vec<u8>,
}

/// [`Direct`]'s buffer.
const DIRECT_BUF: usize = 256 * 1024;

impl<'a, W: Write + ?Sized> Direct<'a, W> {
    pub(crate) fn new(sink: &'a mut W) -> Self {
        Self {
            sink,
            buf: vec![0; DIRECT_BUF],
        }
    }
}

impl<W: Write + ?Sized> Sink for Direct<'_, W> {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn filled(&mut self, n: usize) -> std::io::Result<()> {
        self.sink.write_all(&self.buf[..n])
    }
}

/// A temporary file beside the target, deleted unless [`TempFile::commit`] renames it into place.
pub(crate) struct TempFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl TempFile {
    /// Creates the temporary file in `target`'s directory (so the rename is atomic), and the
    /// [`FileWriter`] that fills it.
    pub(crate) fn create(target: &Path) -> Result<(Self, FileWriter), Error> {
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
        let temp = Self {
            temp,
            target: target.to_path_buf(),
        };
        Ok((temp, FileWriter::new(file)))
    }

    /// Writes what `writer` still holds and waits for its thread, syncs the file, then renames
    /// it to the target.
    pub(crate) fn commit(self, writer: FileWriter) -> Result<(), Error> {
        let io = |context: &str, e| Error::io(format!("{context} {}", self.target.display()), e);
        writer.finish().map_err(|e| io("writing", e))?;
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

/// [`WRITE_PIECE`] buffers at most per download: one the pump fills, one the thread writes, one
/// waiting between them.
const FILE_BUFFERS: usize = 3;

/// Fills the temporary file. The pump reads into 1 MiB buffers; each full one goes to a writer
/// thread, which writes it in one call and starts its writeback every
/// [`WRITEBACK_INTERVAL`](nx_protocol::download::WRITEBACK_INTERVAL) (so the fsync of
/// [`TempFile::commit`] is short), while the pump receives and hashes the next: on one thread,
/// the copy into the page cache would wait for the socket and the hash, and they for it. The
/// thread starts with the second megabyte, so a small download is written inline, at the end.
/// Memory stays at [`FILE_BUFFERS`] buffers: the pump waits for one the thread is done with.
pub(crate) struct FileWriter {
    /// The file (the thread writes through a handle of its own).
    file: std::fs::File,
    buf: Vec<u8>,
    /// Bytes of `buf` read.
    filled: usize,
    /// Buffers made so far.
    buffers: usize,
    thread: Option<WriterThread>,
    /// No thread could be started: the pump's thread writes.
    inline: bool,
}

/// The writer thread and the buffers going to it (with their length) and coming back.
struct WriterThread {
    full: SyncSender<(Vec<u8>, usize)>,
    empty: Receiver<Vec<u8>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl WriterThread {
    /// Starts writing into a handle of its own on `file` (`None` when no thread or handle
    /// could be had: then the pump's thread writes).
    fn spawn(file: &std::fs::File) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (full, to_write) = sync_channel::<(Vec<u8>, usize)>(FILE_BUFFERS);
        let (written, empty) = sync_channel(FILE_BUFFERS);
        let handle = std::thread::Builder::new()
            .name("nx-download-writer".into())
            .spawn(move || {
                let mut file = &file;
                let mut writeback = Writeback::new();
                for (buf, n) in to_write {
                    file.write_all(&buf[..n])?;
                    if let Some((offset, len)) = writeback.wrote(n as u64) {
                        start_writeback(file, offset, len);
                    }
                    // The pump may have stopped on an error: then nobody takes it back.
                    let _ = written.send(buf);
                }
                Ok(())
            })
            .ok()?;
        Some(Self {
            full,
            empty,
            handle,
        })
    }

    /// The thread's outcome, once it is told (or found) to be done.
    fn join(self) -> std::io::Result<()> {
        drop(self.full);
        self.handle.join().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the download's writer thread panicked",
            ))
        })
    }
}

impl FileWriter {
    fn new(file: std::fs::File) -> Self {
        Self {
            file,
            buf: vec![0; WRITE_PIECE],
            filled: 0,
            buffers: 1,
            thread: None,
            inline: false,
        }
    }

    /// Hands the full buffer to the thread (starting it if need be) and takes an empty one.
    fn pass_on(&mut self) -> std::io::Result<()> {
        if !self.inline && self.thread.is_none() {
            self.thread = WriterThread::spawn(&self.file);
            self.inline = self.thread.is_none();
        }
        let Some(thread) = &self.thread else {
            self.file.write_all(&self.buf[..self.filled])?;
            self.filled = 0;
            return Ok(());
        };
        let next = if self.buffers < FILE_BUFFERS {
            self.buffers += 1;
            Some(vec![0; WRITE_PIECE])
        } else {
            None
        };
        let full = std::mem::take(&mut self.buf);
        let next = match thread.full.send((full, self.filled)) {
            Ok(()) => next.map_or_else(|| thread.empty.recv().ok(), Some),
            Err(_) => None,
        };
        self.filled = 0;
        match next {
            Some(buf) => {
                self.buf = buf;
                Ok(())
            }
            // The thread stopped: its error says why.
            None => match self.thread.take().map(WriterThread::join) {
                Some(Err(e)) => Err(e),
                _ => Err(std::io::Error::other(
                    "the download's writer thread stopped",
                )),
            },
        }
    }

    /// Writes what is left and waits for the thread to have written everything.
    fn finish(mut self) -> std::io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return self.file.write_all(&self.buf[..self.filled]);
        };
        if self.filled > 0 {
            // A failed send means the thread stopped: joining it says why.
            let _ = thread
                .full
                .send((std::mem::take(&mut self.buf), self.filled));
        }
        thread.join()
    }
}

impl Sink for FileWriter {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    fn filled(&mut self, n: usize) -> std::io::Result<()> {
        self.filled += n;
        // A short read means a slow body: what it holds goes to the file now, not when a
        // megabyte has come (a fast one reads ureq's whole 128 KiB buffer at a time).
        if self.filled == self.buf.len() || n < SLOW_READ {
            self.pass_on()?;
        }
        Ok(())
    }
}

impl Drop for FileWriter {
    /// A download that failed waits for the thread to stop (it stops after the write in hand),
    /// so nothing writes into the temporary file once it is removed.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    /// Feeds `data` to `writer` as reads of `piece` bytes would, then finishes it.
    fn feed(mut writer: FileWriter, data: &[u8], piece: usize) -> std::io::Result<()> {
        let mut at = 0;
        while at < data.len() {
            let buf = writer.buf();
            let n = buf.len().min(piece).min(data.len() - at);
            buf[..n].copy_from_slice(&data[at..at + n]);
            writer.filled(n)?;
            at += n;
        }
        writer.finish()
    }

    #[test]
    fn the_writer_thread_writes_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Small (written at the end, no thread), and more than the buffers there are.
        for len in [1000, 7 * WRITE_PIECE / 2 + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            feed(
                FileWriter::new(std::fs::File::create(&path).unwrap()),
                &data,
                100_003,
            )
            .unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "{len}");
        }
    }

    #[test]
    fn a_failed_write_surfaces_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // Writing to a file opened for reading fails, on the thread or here.
        for len in [1000, 5 * WRITE_PIECE] {
            let file = std::fs::File::open(&path).unwrap();
            assert!(
                feed(FileWriter::new(file), &vec![1; len], 65_536).is_err(),
                "{len}"
            );
        }
    }
}
