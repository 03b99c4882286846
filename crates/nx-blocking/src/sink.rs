//! Where downloaded bytes go: any `Write`, or a temporary file that becomes the target file only
//! once every check has passed. Shared by NXCloud downloads and On-Premises retrieves.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use nx_protocol::download::{SLOW_READ, Sha256State, TEMP_PREFIX, WRITE_PIECE, Writeback};
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
    fn filled(&mut self, n: usize) -> io::Result<()>;

    /// The body ended: the SHA-256 the sink computed from what it was handed (the call's, taken
    /// out with [`nx_protocol::call::Call::take_sha256`]), once every byte is hashed.
    fn sha256(&mut self) -> io::Result<Option<Sha256State>> {
        Ok(None)
    }
}

/// A caller's writer: each read is written at once (the caller sees the bytes as they come).
/// The buffer is larger than ureq's 128 KiB input buffer, so each read takes all ureq holds and
/// becomes one write.
///
/// The caller's thread reads, checks lengths and writes; the SHA-256, when one is computed, is
/// worked out from the second megabyte on by a thread of the download's own (a [`Relay`]), a
/// buffer of written bytes at a time, so that hashing overlaps receiving and writing:
/// on one thread the three wait for each other (BENCHMARKS.md item 8c measures it). The writer
/// stays on the caller's thread (it need not be `Send`), and the digest comes back before the
/// call's checks finish ([`nx_protocol::call::Call::give_sha256`]): nothing passes unverified.
pub(crate) struct Direct<'a, W: ?Sized> {
    sink: &'a mut W,
    buf: Vec<u8>,
    /// Bytes of `buf` written, waiting to be hashed on the thread.
    filled: usize,
    sha256: Hashing,
}

/// Where [`Direct`]'s SHA-256 is computed.
enum Hashing {
    /// None is asked for.
    Off,
    /// On the caller's thread, for `until` more bytes (`None`: to the end, no thread could
    /// start).
    Here {
        sha256: Sha256State,
        until: Option<u64>,
    },
    /// On its own thread.
    Away(Relay<Sha256State>),
}

/// [`Direct`]'s buffers (two reads of ureq's; larger ones measured no faster).
const DIRECT_BUF: usize = 256 * 1024;

impl<'a, W: Write + ?Sized> Direct<'a, W> {
    /// Writes into `sink`, computing `sha256` (the call's, taken out) on the way.
    pub(crate) fn new(sink: &'a mut W, sha256: Option<Sha256State>) -> Self {
        Self {
            sink,
            buf: vec![0; DIRECT_BUF],
            filled: 0,
            sha256: match sha256 {
                None => Hashing::Off,
                Some(sha256) => Hashing::Here {
                    sha256,
                    until: Some(WRITE_PIECE as u64),
                },
            },
        }
    }
}

impl<W: Write + ?Sized> Sink for Direct<'_, W> {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    fn filled(&mut self, n: usize) -> io::Result<()> {
        let read = self.filled..self.filled + n;
        self.sink.write_all(&self.buf[read.clone()])?;
        match &mut self.sha256 {
            Hashing::Off => {}
            Hashing::Here { sha256, until } => {
                sha256.update(&self.buf[read]);
                let Some(left) = until else { return Ok(()) };
                *left = left.saturating_sub(n as u64);
                // A small download ends before a thread is worth starting.
                if *left == 0 {
                    match Relay::spawn("nx-download-hash", sha256.clone(), hash_piece) {
                        Ok(relay) => self.sha256 = Hashing::Away(relay),
                        Err(_) => *until = None,
                    }
                }
            }
            Hashing::Away(relay) => {
                self.filled += n;
                // Passed on once another read like this one would not fit: a read cut at the
                // buffer's end would be one more write to the caller.
                if self.buf.len() - self.filled < n {
                    let full = std::mem::take(&mut self.buf);
                    self.buf = relay.pass(full, self.filled)?;
                    self.filled = 0;
                }
            }
        }
        Ok(())
    }

    fn sha256(&mut self) -> io::Result<Option<Sha256State>> {
        match std::mem::replace(&mut self.sha256, Hashing::Off) {
            Hashing::Off => Ok(None),
            Hashing::Here { sha256, .. } => Ok(Some(sha256)),
            Hashing::Away(relay) => {
                let last = (self.filled > 0).then(|| (std::mem::take(&mut self.buf), self.filled));
                relay.finish(last).map(Some)
            }
        }
    }
}

/// The hashing thread's work: one piece hashed.
fn hash_piece(sha256: &mut Sha256State, piece: &[u8]) -> io::Result<()> {
    sha256.update(piece);
    Ok(())
}

/// Buffers a [`Relay`] has at most: one the pump fills, one the thread works on, one waiting
/// between them.
const RELAY_BUFFERS: usize = 3;

/// A thread of the download's own that does its work (writing, hashing) on each full buffer it
/// is handed, in order, and hands it back: memory stays at [`RELAY_BUFFERS`] buffers, the pump
/// waiting for one the thread is done with. Dropped, it waits for the thread to stop (after the
/// buffer in hand), so nothing of the download runs once its call has returned.
struct Relay<S> {
    full: Option<SyncSender<(Vec<u8>, usize)>>,
    empty: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<io::Result<S>>>,
    /// Buffers made so far, the one the pump fills included.
    buffers: usize,
}

impl<S: Send + 'static> Relay<S> {
    /// Starts a thread named `name` that does `work` with `state` on every buffer.
    fn spawn(
        name: &str,
        mut state: S,
        mut work: impl FnMut(&mut S, &[u8]) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let (full, to_do) = sync_channel::<(Vec<u8>, usize)>(RELAY_BUFFERS);
        let (done, empty) = sync_channel(RELAY_BUFFERS);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for (buf, n) in to_do {
                    work(&mut state, &buf[..n])?;
                    // The pump may have stopped on an error: then nobody takes it back.
                    let _ = done.send(buf);
                }
                Ok(state)
            })?;
        Ok(Self {
            full: Some(full),
            empty,
            handle: Some(handle),
            buffers: 1,
        })
    }

    /// Hands over `buf` (its first `n` bytes) and returns an empty buffer of the same size.
    fn pass(&mut self, buf: Vec<u8>, n: usize) -> io::Result<Vec<u8>> {
        let size = buf.len();
        let sent = self
            .full
            .as_ref()
            .is_some_and(|full| full.send((buf, n)).is_ok());
        let next = match sent {
            false => None,
            true if self.buffers < RELAY_BUFFERS => {
                self.buffers += 1;
                Some(vec![0; size])
            }
            true => self.empty.recv().ok(),
        };
        // No buffer back: the thread stopped, and its error says why.
        next.ok_or_else(|| match self.stop() {
            Err(e) => e,
            Ok(_) => io::Error::other("the download's helper thread stopped"),
        })
    }

    /// Hands over what is `last` (if anything) and waits for the thread to be done with every
    /// buffer: its state.
    fn finish(mut self, last: Option<(Vec<u8>, usize)>) -> io::Result<S> {
        if let (Some(last), Some(full)) = (last, &self.full) {
            // A failed send means the thread stopped: joining it says why.
            let _ = full.send(last);
        }
        self.stop()
    }

    /// Tells the thread to stop once its buffers are done, and waits for it.
    fn stop(&mut self) -> io::Result<S> {
        self.full = None;
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the download's helper thread panicked"))),
            None => Err(io::Error::other("the download's helper thread stopped")),
        }
    }
}

impl<S> Drop for Relay<S> {
    fn drop(&mut self) {
        self.full = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
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

/// Fills the temporary file. The pump reads into [`WRITE_PIECE`] buffers; each full one goes to
/// a writer thread (a [`Relay`]), which writes it in one call and starts its writeback every
/// [`WRITEBACK_INTERVAL`](nx_protocol::download::WRITEBACK_INTERVAL) (so the fsync of
/// [`TempFile::commit`] is short), while the pump receives and hashes the next: on one thread,
/// the copy into the page cache would wait for the socket and the hash, and they for it. The
/// thread starts with the second megabyte, so a small download is written inline, at the end.
pub(crate) struct FileWriter {
    /// The file (the thread writes through a handle of its own).
    file: std::fs::File,
    buf: Vec<u8>,
    /// Bytes of `buf` read.
    filled: usize,
    thread: Option<Relay<(std::fs::File, Writeback)>>,
    /// No thread could be started: the pump's thread writes.
    inline: bool,
}

impl FileWriter {
    fn new(file: std::fs::File) -> Self {
        Self {
            file,
            buf: vec![0; WRITE_PIECE],
            filled: 0,
            thread: None,
            inline: false,
        }
    }

    /// Hands the full buffer to the thread (starting it if need be) and takes an empty one.
    fn pass_on(&mut self) -> io::Result<()> {
        if !self.inline && self.thread.is_none() {
            self.thread = self.file.try_clone().ok().and_then(|file| {
                Relay::spawn("nx-download-writer", (file, Writeback::new()), write_piece).ok()
            });
            self.inline = self.thread.is_none();
        }
        match &mut self.thread {
            Some(thread) => {
                let full = std::mem::take(&mut self.buf);
                self.buf = thread.pass(full, self.filled)?;
            }
            None => self.file.write_all(&self.buf[..self.filled])?,
        }
        self.filled = 0;
        Ok(())
    }

    /// Writes what is left and waits for the thread to have written everything.
    fn finish(mut self) -> io::Result<()> {
        let last = (self.filled > 0).then(|| (std::mem::take(&mut self.buf), self.filled));
        match self.thread.take() {
            Some(thread) => thread.finish(last).map(drop),
            None => last.map_or(Ok(()), |(buf, n)| self.file.write_all(&buf[..n])),
        }
    }
}

/// The writer thread's work: one piece written, its writeback started when a stretch is full.
fn write_piece((file, writeback): &mut (std::fs::File, Writeback), piece: &[u8]) -> io::Result<()> {
    file.write_all(piece)?;
    if let Some((offset, len)) = writeback.wrote(piece.len() as u64) {
        start_writeback(file, offset, len);
    }
    Ok(())
}

impl Sink for FileWriter {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    fn filled(&mut self, n: usize) -> io::Result<()> {
        self.filled += n;
        // A short read means a slow body: what it holds goes to the file now, not when a
        // megabyte has come (a fast one reads ureq's whole 128 KiB buffer at a time).
        if self.filled == self.buf.len() || n < SLOW_READ {
            self.pass_on()?;
        }
        Ok(())
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
    use nx_protocol::download::{DownloadCheck, Sha256Digest};

    use super::*;

    /// Feeds `data` to `sink` as reads of at most `piece` bytes would.
    fn fill(sink: &mut impl Sink, data: &[u8], piece: usize) -> std::io::Result<()> {
        let mut at = 0;
        while at < data.len() {
            let buf = sink.buf();
            let n = buf.len().min(piece).min(data.len() - at);
            buf[..n].copy_from_slice(&data[at..at + n]);
            sink.filled(n)?;
            at += n;
        }
        Ok(())
    }

    /// Feeds `data` to `writer` as reads of `piece` bytes would, then finishes it.
    fn feed(mut writer: FileWriter, data: &[u8], piece: usize) -> std::io::Result<()> {
        fill(&mut writer, data, piece)?;
        writer.finish()
    }

    /// The digest `Direct` computed of `data` fed to it in reads of `piece` bytes, with what it
    /// wrote.
    fn direct(data: &[u8], piece: usize) -> (Vec<u8>, Sha256State) {
        let mut check = DownloadCheck::new(u64::MAX).compute_sha256();
        let mut out = Vec::new();
        let mut sink = Direct::new(&mut out, check.take_sha256());
        fill(&mut sink, data, piece).unwrap();
        let sha256 = sink.sha256().unwrap().unwrap();
        (out, sha256)
    }

    #[test]
    fn direct_writes_and_hashes_every_byte_in_order() {
        // Hashed here (under a megabyte), then on the thread, reads cut or not at the
        // buffer's end, more than its buffers.
        for (len, piece) in [
            (1000, 100),
            (WRITE_PIECE + 1, 131_072),
            (7 * WRITE_PIECE / 2 + 17, 131_072),
            (3 * WRITE_PIECE + 5, 100_003),
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let (out, sha256) = direct(&data, piece);
            assert!(out == data, "{len}");
            let mut check = DownloadCheck::new(u64::MAX).compute_sha256();
            let _ = check.take_sha256();
            check.update(&data).unwrap();
            check.give_sha256(sha256);
            assert_eq!(
                check.finish().unwrap().sha256,
                Some(Sha256Digest::of(&data)),
                "{len}"
            );
        }
    }

    #[test]
    fn direct_surfaces_the_writers_error_and_stops_its_thread() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
                }
                let n = bytes.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut check = DownloadCheck::new(u64::MAX).compute_sha256();
        let mut full = Full(2 * WRITE_PIECE);
        let mut sink = Direct::new(&mut full, check.take_sha256());
        let error = fill(&mut sink, &vec![7; 3 * WRITE_PIECE], 131_072).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(matches!(sink.sha256, Hashing::Away(_)), "the thread ran");
        // Dropped, it waits for its thread.
        drop(sink);
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
