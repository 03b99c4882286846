//! The request time, as the caller gives it.

use std::fmt;

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
    /// Renders `n`.
    pub fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self {
            buf,
            start: i as u8,
        }
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
    fn digits_match_std_formatting() {
        for n in [0, 1, 9, 10, 1_655_710_885_431, u64::MAX] {
            assert_eq!(Digits::new(n).as_str(), n.to_string());
        }
    }
}
