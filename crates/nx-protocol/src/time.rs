//! The request time, as the caller gives it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the value of NXCloud's `ts` header.
///
/// nx-protocol never reads a clock; transports pass `Timestamp` in (corrected by the clock-skew
/// policy in [`crate::policy::clock`] when the server's clock differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// The time `t` stands for, truncated to whole milliseconds. Pure: `t` is the caller's
    /// (e.g. `SystemTime::now()` in a transport, a fixed instant in a test); nothing is read.
    ///
    /// A time before the Unix epoch is read as 0 and one past `u64::MAX` milliseconds (in about
    /// 584 million years) as `u64::MAX`: neither is a usable `ts`, and NXCloud answers 1004 for
    /// them, so the saturation loses nothing a caller could use.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use nx_protocol::Timestamp;
    /// let t = UNIX_EPOCH + Duration::from_micros(1_655_710_885_431_999);
    /// assert_eq!(Timestamp::from_system_time(t), Timestamp::from_millis(1_655_710_885_431));
    /// assert_eq!(Timestamp::from(t).as_secs(), 1_655_710_885);
    /// assert_eq!(Timestamp::from(UNIX_EPOCH - Duration::from_secs(1)).as_millis(), 0);
    /// ```
    pub fn from_system_time(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// The decimal digits, rendered on the stack (no allocation).
    pub fn digits(self) -> Digits {
        Digits::new(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    /// See [`Timestamp::from_system_time`].
    fn from(t: SystemTime) -> Self {
        Self::from_system_time(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.digits().as_str())
    }
}

/// An unsigned integer's decimal digits in a stack buffer.
#[derive(Clone, Copy)]
pub struct Digits {
    buf: [u8; 20],
    start: u8,
}

impl Digits {
    /// Renders `n`, two digits per division (a 13-digit `ts` in 7 steps, not 13).
    pub fn new(mut n: u64) -> Self {
        /// "00" to "99".
        const PAIRS: [[u8; 2]; 100] = {
            let mut pairs = [[0; 2]; 100];
            let mut i = 0;
            while i < 100 {
                pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
                i += 1;
            }
            pairs
        };
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        while n >= 100 {
            i -= 2;
            buf[i..i + 2].copy_from_slice(&PAIRS[(n % 100) as usize]);
            n /= 100;
        }
        if n >= 10 {
            i -= 2;
            buf[i..i + 2].copy_from_slice(&PAIRS[n as usize]);
        } else {
            i -= 1;
            buf[i] = b'0' + n as u8;
        }
        Self {
            buf,
            start: i as u8,
        }
    }

    /// The digits as bytes (ASCII digits; no UTF-8 check, unlike [`Digits::as_str`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start as usize..]
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.buf[self.start as usize..]).unwrap_or("0")
    }
}

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_system_time_is_exact_and_saturates() {
        use std::time::Duration;
        for ms in [0, 1, 999, 1_655_710_885_431, u64::MAX / 2] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(Timestamp::from(t).as_millis(), ms);
            // Sub-millisecond parts are dropped, never rounded up.
            let later = t + Duration::from_nanos(999_999);
            assert_eq!(Timestamp::from_system_time(later).as_millis(), ms);
        }
        let before = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(Timestamp::from(before).as_millis(), 0);
        // Past u64::MAX milliseconds, where the platform's SystemTime reaches that far.
        if let Some(far) =
            UNIX_EPOCH.checked_add(Duration::from_millis(u64::MAX) + Duration::from_secs(1))
        {
            assert_eq!(Timestamp::from(far).as_millis(), u64::MAX);
        }
    }

    #[test]
    fn digits_match_std_formatting() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1_000,
            1_655_710_885_431,
            10_000_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(Digits::new(n).as_str(), n.to_string());
        }
    }
}
