//! Streamed integrity checks for downloads: feed the chunks as they arrive, learn at the end
//! whether the bytes are the ones promised. Shared by every transport and both APIs.

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest, e.g. the `sha256` an inbound webhook gives for a media file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// From raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters (either case).
    ///
    /// ```
    /// use nx_protocol::download::Sha256Digest;
    /// let hex = "0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b";
    /// assert_eq!(Sha256Digest::from_hex(hex).unwrap().to_string(), hex);
    /// assert!(Sha256Digest::from_hex("0ed3").is_none());
    /// ```
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Self(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hex = [0u8; 64];
        let _ = hex::encode_to_slice(self.0, &mut hex);
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl std::str::FromStr for Sha256Digest {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s).ok_or("a SHA-256 digest is 64 hex characters")
    }
}

/// Why downloaded bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// More bytes than the configured maximum were announced or received.
    #[error(
        "the download is larger than the allowed {limit} bytes (at least {size} bytes); raise the maximum download size if this file is expected"
    )]
    TooLarge {
        /// The maximum.
        limit: u64,
        /// The size announced or reached.
        size: u64,
    },
    /// The body ended with a different number of bytes than `Content-Length` announced.
    #[error(
        "the download ended after {received} bytes but {expected} were announced; the connection was cut or the server lied; retry"
    )]
    LengthMismatch {
        /// Announced.
        expected: u64,
        /// Received.
        received: u64,
    },
    /// The bytes' SHA-256 differs from the expected one.
    #[error(
        "SHA-256 mismatch: expected {expected}, got {actual}; the file is corrupt or not the one the id names; it was not kept"
    )]
    Sha256Mismatch {
        /// Expected digest.
        expected: Sha256Digest,
        /// Digest of what arrived.
        actual: Sha256Digest,
    },
    /// The SHA-256 was taken out to be computed elsewhere ([`DownloadCheck::take_sha256`]) and
    /// never handed back: the bytes cannot be said to be the expected ones.
    #[error(
        "the download's SHA-256 was not computed to its end (the transport's hashing stopped); it was not kept"
    )]
    Sha256NotComputed,
}

/// What a finished, verified download was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// Bytes received.
    pub len: u64,
    /// Their SHA-256, when it was computed (an expected digest was given, or it was asked for).
    pub sha256: Option<Sha256Digest>,
}

impl Verified {
    /// `len` bytes arrived, with this SHA-256 when it was computed.
    pub fn new(len: u64, sha256: Option<Sha256Digest>) -> Self {
        Self { len, sha256 }
    }
}

/// A download's SHA-256 in progress, taken out of its [`DownloadCheck`] to be computed on
/// another thread (nx-blocking hashes there while the caller's thread writes), then handed
/// back with [`DownloadCheck::give_sha256`] before the check finishes.
///
/// ```
/// use nx_protocol::download::{DownloadCheck, Sha256Digest};
/// let mut check = DownloadCheck::new(1024).expect_sha256(Sha256Digest::of(b"hello"));
/// check.begin(Some(5)).unwrap();
/// let mut sha256 = check.take_sha256().unwrap();
/// check.update(b"hello").unwrap(); // lengths only, now
/// let sha256 = std::thread::spawn(move || {
///     sha256.update(b"hello");
///     sha256
/// })
/// .join()
/// .unwrap();
/// check.give_sha256(sha256);
/// assert!(check.finish().is_ok());
/// ```
#[derive(Clone)]
pub struct Sha256State(Sha256);

impl Sha256State {
    /// Feeds the next bytes, in the order they arrived.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl fmt::Debug for Sha256State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256State")
    }
}

/// The checks a download must pass, fed chunk by chunk.
///
/// ```
/// use nx_protocol::download::{DownloadCheck, Sha256Digest};
/// let mut check = DownloadCheck::new(1024).expect_sha256(Sha256Digest::of(b"hello"));
/// check.begin(Some(5)).unwrap();
/// check.update(b"hel").unwrap();
/// check.update(b"lo").unwrap();
/// assert_eq!(check.finish().unwrap().len, 5);
/// ```
#[derive(Clone, Debug)]
pub struct DownloadCheck {
    max_bytes: u64,
    announced: Option<u64>,
    expected_sha256: Option<Sha256Digest>,
    hasher: Option<Sha256>,
    /// The hasher is out ([`DownloadCheck::take_sha256`]): no digest until it is back.
    hashing_elsewhere: bool,
    received: u64,
}

impl DownloadCheck {
    /// Checks for a download of at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            announced: None,
            expected_sha256: None,
            hasher: None,
            hashing_elsewhere: false,
            received: 0,
        }
    }

    /// Also require this SHA-256.
    pub fn expect_sha256(mut self, digest: Sha256Digest) -> Self {
        self.expected_sha256 = Some(digest);
        self.hasher = Some(Sha256::new());
        self
    }

    /// Compute the SHA-256 even without an expected value (reported in [`Verified`]).
    pub fn compute_sha256(mut self) -> Self {
        self.hasher.get_or_insert_with(Sha256::new);
        self
    }

    /// Records the announced `Content-Length` (if any), refusing one over the maximum before a
    /// single byte is read.
    pub fn begin(&mut self, content_length: Option<u64>) -> Result<(), IntegrityError> {
        if let Some(len) = content_length
            && len > self.max_bytes
        {
            return Err(IntegrityError::TooLarge {
                limit: self.max_bytes,
                size: len,
            });
        }
        self.announced = content_length;
        Ok(())
    }

    /// Feeds a chunk.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), IntegrityError> {
        self.received += chunk.len() as u64;
        if self.received > self.max_bytes {
            return Err(IntegrityError::TooLarge {
                limit: self.max_bytes,
                size: self.received,
            });
        }
        if let Some(announced) = self.announced
            && self.received > announced
        {
            return Err(IntegrityError::LengthMismatch {
                expected: announced,
                received: self.received,
            });
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(chunk);
        }
        Ok(())
    }

    /// Takes the running SHA-256 out (`None` when none is computed), for a driver that hashes
    /// on a thread of its own: [`DownloadCheck::update`] then checks lengths only, and
    /// [`DownloadCheck::finish`] fails with [`IntegrityError::Sha256NotComputed`] unless
    /// [`DownloadCheck::give_sha256`] hands it back, fed every byte since, in order.
    pub fn take_sha256(&mut self) -> Option<Sha256State> {
        let hasher = self.hasher.take()?;
        self.hashing_elsewhere = true;
        Some(Sha256State(hasher))
    }

    /// Hands back the SHA-256 [`DownloadCheck::take_sha256`] took out.
    pub fn give_sha256(&mut self, sha256: Sha256State) {
        self.hasher = Some(sha256.0);
        self.hashing_elsewhere = false;
    }

    /// Bytes fed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The announced length, if any.
    pub fn announced(&self) -> Option<u64> {
        self.announced
    }

    /// Ends the download: the length must match what was announced and the digest what was
    /// expected.
    pub fn finish(self) -> Result<Verified, IntegrityError> {
        if let Some(expected) = self.announced
            && expected != self.received
        {
            return Err(IntegrityError::LengthMismatch {
                expected,
                received: self.received,
            });
        }
        if self.hashing_elsewhere {
            return Err(IntegrityError::Sha256NotComputed);
        }
        let sha256 = self.hasher.map(|h| Sha256Digest(h.finalize().into()));
        if let (Some(expected), Some(actual)) = (self.expected_sha256, sha256)
            && expected != actual
        {
            return Err(IntegrityError::Sha256Mismatch { expected, actual });
        }
        Ok(Verified {
            len: self.received,
            sha256,
        })
    }
}

/// A progress callback: bytes so far, total when announced.
pub type Progress = Box<dyn FnMut(u64, Option<u64>) + Send>;

/// What a caller asks of one download: an expected SHA-256, a size cap, a progress callback.
/// Both transports take it as it is.
#[derive(Default)]
pub struct DownloadOptions {
    sha256: Option<Sha256Digest>,
    compute_sha256: bool,
    max_bytes: Option<u64>,
    progress: Option<Progress>,
}

impl DownloadOptions {
    /// No expected digest, the client's maximum size, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Require this SHA-256 (the inbound webhook gives it).
    pub fn sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// Compute the SHA-256 of what arrives even without an expected one, and report it in
    /// [`Verified::sha256`] (to store it, say).
    pub fn compute_sha256(mut self) -> Self {
        self.compute_sha256 = true;
        self
    }

    /// Refuse downloads larger than `n` bytes (default: the client's `max_download_bytes`).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// The size cap: [`DownloadOptions::max_bytes`] if set, else `default_max`.
    pub fn max_bytes_or(&self, default_max: u64) -> u64 {
        self.max_bytes.unwrap_or(default_max)
    }

    /// Called after every chunk with (bytes so far, total when announced).
    pub fn progress(mut self, f: impl FnMut(u64, Option<u64>) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// The checks for a download announced as `total` bytes, refused at once if that is over
    /// the limit (`default_max` unless [`DownloadOptions::max_bytes`] was set).
    pub fn check(
        &self,
        default_max: u64,
        total: Option<u64>,
    ) -> Result<DownloadCheck, IntegrityError> {
        let mut check = DownloadCheck::new(self.max_bytes_or(default_max));
        if let Some(digest) = self.sha256 {
            check = check.expect_sha256(digest);
        } else if self.compute_sha256 {
            check = check.compute_sha256();
        }
        check.begin(total)?;
        Ok(check)
    }

    /// Reports progress after a chunk, to the callback if there is one.
    pub fn report(&mut self, check: &DownloadCheck) {
        if let Some(progress) = &mut self.progress {
            progress(check.received(), check.announced());
        }
    }
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("sha256", &self.sha256)
            .field("compute_sha256", &self.compute_sha256)
            .field("max_bytes", &self.max_bytes)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Bytes written to a download's temporary file between two requests to the operating system
/// to start writing them to disk. The final fsync before the rename then waits only for the
/// last stretch instead of the whole file (BENCHMARKS.md item 8c measures the effect); starting
/// writeback does not wait for it, and the fsync stays, so nothing about durability changes.
pub const WRITEBACK_INTERVAL: u64 = 8 * 1024 * 1024;

/// Bytes a download's temporary file is written in, at most, per write: both drivers gather
/// what they receive into pieces of this size (nx-blocking's buffers, nx-async's batches), so a
/// 256 MiB download is 256 writes, not thousands, and the write leaves the receiving thread.
pub const WRITE_PIECE: usize = 1024 * 1024;

/// A read (or chunk) shorter than this is written at once instead of waiting for a full
/// [`WRITE_PIECE`]: a short read means a slow body, whose temporary file should fill as it
/// arrives (a fast body fills whole read buffers of 128 KiB or more).
pub const SLOW_READ: usize = 16 * 1024;

/// The start of a download's temporary file name (nx-cli's staging directory too): hidden, beside
/// the target, and recognisable as ours.
pub const TEMP_PREFIX: &str = ".nx-download-";

/// Where a file written front to back stands against [`WRITEBACK_INTERVAL`]: fed the bytes
/// written, it names the stretch whose writeback should start.
///
/// ```
/// use nx_protocol::download::{WRITEBACK_INTERVAL, Writeback};
/// let mut writeback = Writeback::new();
/// assert_eq!(writeback.wrote(WRITEBACK_INTERVAL - 1), None);
/// assert_eq!(writeback.wrote(2), Some((0, WRITEBACK_INTERVAL + 1)));
/// assert_eq!(writeback.wrote(1), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Writeback {
    written: u64,
    started: u64,
}

impl Writeback {
    /// Nothing written yet.
    pub const fn new() -> Self {
        Self {
            written: 0,
            started: 0,
        }
    }

    /// `n` more bytes were written: `(offset, len)` of the stretch to hand to the disk now, once
    /// at least [`WRITEBACK_INTERVAL`] bytes are waiting.
    pub fn wrote(&mut self, n: u64) -> Option<(u64, u64)> {
        self.written += n;
        let waiting = self.written - self.started;
        (waiting >= WRITEBACK_INTERVAL).then(|| {
            let start = self.started;
            self.started = self.written;
            (start, waiting)
        })
    }
}

/// Seconds before its `Expires` at which a download URL is treated as expired, so a transfer
/// does not start on a URL about to die.
pub const URL_EXPIRY_MARGIN_SECS: u64 = 5;

/// Whether a download must first fetch a fresh URL with getMedia: the URL has expired (or is
/// about to), or the storage refused it with 403 (expired or tampered). Done at most once per
/// download, which the caller tracks with `already_refreshed`.
pub fn needs_fresh_url(
    url: &crate::wa::DownloadUrl,
    refused_with: Option<http::StatusCode>,
    now: crate::Timestamp,
    already_refreshed: bool,
) -> bool {
    !already_refreshed
        && (refused_with == Some(http::StatusCode::FORBIDDEN)
            || url.is_expired(now, URL_EXPIRY_MARGIN_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_long_and_wrong_bodies() {
        let mut short = DownloadCheck::new(100);
        short.begin(Some(10)).unwrap();
        short.update(b"12345").unwrap();
        assert_eq!(
            short.finish(),
            Err(IntegrityError::LengthMismatch {
                expected: 10,
                received: 5
            })
        );

        let mut long = DownloadCheck::new(100);
        long.begin(Some(3)).unwrap();
        assert!(matches!(
            long.update(b"1234"),
            Err(IntegrityError::LengthMismatch { .. })
        ));

        assert_eq!(
            DownloadCheck::new(4).begin(Some(5)),
            Err(IntegrityError::TooLarge { limit: 4, size: 5 })
        );
        let mut unannounced = DownloadCheck::new(4);
        unannounced.begin(None).unwrap();
        assert!(matches!(
            unannounced.update(b"12345"),
            Err(IntegrityError::TooLarge { .. })
        ));

        let mut wrong = DownloadCheck::new(100).expect_sha256(Sha256Digest::of(b"right"));
        wrong.begin(None).unwrap();
        wrong.update(b"wrong").unwrap();
        assert!(matches!(
            wrong.finish(),
            Err(IntegrityError::Sha256Mismatch { .. })
        ));
    }

    #[test]
    fn a_digest_taken_out_must_come_back_fed_every_byte() {
        let expected = Sha256Digest::of(b"abcdef");
        let check = || {
            let mut check = DownloadCheck::new(100).expect_sha256(expected);
            check.begin(Some(6)).unwrap();
            check
        };
        // Back, fed every byte: verified.
        let mut whole = check();
        let mut sha256 = whole.take_sha256().unwrap();
        assert!(whole.take_sha256().is_none(), "taken once");
        whole.update(b"abc").unwrap();
        whole.update(b"def").unwrap();
        sha256.update(b"abcdef");
        whole.give_sha256(sha256);
        assert_eq!(whole.finish().unwrap().sha256, Some(expected));
        // Never back: refused, however right the lengths.
        let mut lost = check();
        let _ = lost.take_sha256();
        lost.update(b"abcdef").unwrap();
        assert_eq!(lost.finish(), Err(IntegrityError::Sha256NotComputed));
        // Back, missing bytes: a mismatch.
        let mut short = check();
        let mut sha256 = short.take_sha256().unwrap();
        short.update(b"abcdef").unwrap();
        sha256.update(b"abc");
        short.give_sha256(sha256);
        assert!(matches!(
            short.finish(),
            Err(IntegrityError::Sha256Mismatch { .. })
        ));
        // Lengths are still checked while the digest is out.
        let mut long = check();
        let _ = long.take_sha256();
        assert!(matches!(
            long.update(b"abcdefg"),
            Err(IntegrityError::LengthMismatch { .. })
        ));
        // Nothing to take when no digest is computed.
        assert!(DownloadCheck::new(100).take_sha256().is_none());
    }

    #[test]
    fn options_compute_the_digest_only_when_asked() {
        let run = |options: DownloadOptions| {
            let mut check = options.check(100, Some(3)).unwrap();
            check.update(b"abc").unwrap();
            check.finish().unwrap().sha256
        };
        assert_eq!(run(DownloadOptions::new()), None);
        assert_eq!(
            run(DownloadOptions::new().compute_sha256()),
            Some(Sha256Digest::of(b"abc"))
        );
        assert!(
            DownloadOptions::new()
                .max_bytes(2)
                .check(100, Some(3))
                .is_err()
        );
    }

    #[test]
    fn writeback_names_each_stretch_once_and_in_order() {
        let mut writeback = Writeback::new();
        let chunk = 64 * 1024;
        let stretches: Vec<_> = (0..(3 * WRITEBACK_INTERVAL / chunk + 1))
            .filter_map(|_| writeback.wrote(chunk))
            .collect();
        assert_eq!(
            stretches,
            [
                (0, WRITEBACK_INTERVAL),
                (WRITEBACK_INTERVAL, WRITEBACK_INTERVAL),
                (2 * WRITEBACK_INTERVAL, WRITEBACK_INTERVAL)
            ]
        );
        assert_eq!(writeback.wrote(0), None);
    }

    #[test]
    fn known_digest() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            Sha256Digest::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
