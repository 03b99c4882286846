//! How many bytes a connection may deliver for an answer's body: the body itself, its chunk
//! framing and its trailers, decided once for both transports.
//!
//! Framing and trailers are bytes the call machine never sees: a server that sends trailer
//! lines without end (or chunk extensions without end) delivers no body byte after its last
//! chunk, so neither a size cap nor the stall meter (bytes keep moving) ends it, and when no
//! length was announced nothing tells trailers from a body that is still coming. Only the
//! call's deadline would, after it read as much as the link carries in that time (gigabytes on
//! loopback). hyper caps trailers at 16 KiB; ureq has no cap. A transport that counts what its
//! connection delivers after an answer's head checks the count against [`check`], so such an
//! answer ends after at most [`FLOOR`] bytes more than its body and framing.

use std::fmt;

/// Framing and trailers allowed whatever the body's size: 64 KiB, four times hyper's 16 KiB
/// trailer cap, so no answer hyper reads is refused by this bound.
pub const FLOOR: u64 = 64 * 1024;

/// Bytes allowed per body byte, the byte included: 8. The costliest framing a real server sends
/// is a body a byte per chunk, `1\r\nx\r\n`, 6 bytes per byte (a drip through a chunking
/// proxy); 8 leaves room for short chunk extensions. A larger chunk costs less: `4000\r\n` and
/// `\r\n` for 16 KiB is 8 bytes. (Reading taken: tiny chunks that each carry a long extension
/// are refused once past [`FLOOR`], as a server padding its framing would be.)
pub const PER_BODY_BYTE: u64 = 8;

/// The most bytes the connection may deliver after the head of an answer of which `body` bytes
/// arrived: `body` at [`PER_BODY_BYTE`] plus [`FLOOR`].
///
/// ```
/// use nx_protocol::call::framing::limit;
/// assert_eq!(limit(0), 64 * 1024);
/// assert_eq!(limit(1000), 8000 + 64 * 1024);
/// assert_eq!(limit(u64::MAX), u64::MAX);
/// ```
pub const fn limit(body: u64) -> u64 {
    body.saturating_mul(PER_BODY_BYTE).saturating_add(FLOOR)
}

/// Whether `delivered` bytes after an answer's head are within [`limit`] for `body` bytes of
/// body. `read_ahead` is what the transport may hold read but not yet handed over as body (its
/// input buffer): those bytes are counted as delivered before they count as body.
///
/// ```
/// use nx_protocol::call::framing::{FLOOR, check};
/// // 1-byte chunks, as fast as the server can: within the bound.
/// assert!(check(6 * 100_000, 100_000, 0).is_ok());
/// // A 5-byte body, then trailers: refused past FLOOR (and the read-ahead).
/// assert!(check(FLOOR, 5, 0).is_ok());
/// let excess = check(FLOOR + 4096 + 41, 5, 4096).unwrap_err();
/// assert_eq!((excess.delivered, excess.body), (FLOOR + 4096 + 41, 5));
/// ```
pub const fn check(delivered: u64, body: u64, read_ahead: u64) -> Result<(), Excess> {
    if delivered <= limit(body).saturating_add(read_ahead) {
        Ok(())
    } else {
        Err(Excess { delivered, body })
    }
}

/// An answer whose connection delivered more than [`limit`] allows for its body: endless
/// trailers or chunk framing. Transports report it as an [`crate::error::Error::Transport`]
/// whose source is this, kept inside a [`crate::error::RedactedError`] by [`super::Call::failed`]
/// (as nx-async reports hyper's own trailer cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Excess {
    /// Bytes the connection delivered after the answer's head.
    pub delivered: u64,
    /// Bytes of body among them.
    pub body: u64,
}

impl fmt::Display for Excess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server sent {} bytes for {} bytes of answer body: more chunk framing or trailers \
             than allowed ({} bytes per body byte plus {} KiB); the server is misbehaving",
            self.delivered,
            self.body,
            PER_BODY_BYTE,
            FLOOR / 1024
        )
    }
}

impl std::error::Error for Excess {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_chunks_pass_and_endless_trailers_do_not() {
        // `1\r\nx\r\n` per body byte, for a long time: never refused.
        for body in [1u64, 10, 1 << 20, 1 << 40] {
            assert!(check(body * 6 + 5, body, 0).is_ok(), "{body}");
        }
        // After a 5-byte body, 64-byte trailer lines: refused at the 1025th line.
        let body = 5 + 5 + 5; // `5\r\nhello\r\n` is 10 bytes, then `0\r\n`
        let refused = (1u64..)
            .find(|lines| check(body + lines * 64, 5, 0).is_err())
            .unwrap();
        assert_eq!(refused, 1025);
        // The read-ahead is allowed on top.
        assert!(check(limit(5) + 100, 5, 100).is_ok());
        assert!(check(limit(5) + 101, 5, 100).is_err());
    }

    #[test]
    fn the_error_says_what_was_sent() {
        let text = Excess {
            delivered: 200_000,
            body: 5,
        }
        .to_string();
        assert!(text.contains("200000 bytes for 5 bytes"), "{text}");
        assert!(text.contains("64 KiB"), "{text}");
    }
}
