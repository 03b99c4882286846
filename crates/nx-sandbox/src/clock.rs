//! The sandbox clock: the system time plus a configurable offset, so tests can put the sandbox
//! ahead of or behind the client (clock skew, expired URLs and tokens) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest instant the sandbox clock shows: 9999-12-31T23:59:59Z. Formatting an HTTP date
/// after that would fail, so the clock stops there whatever the offset.
const MAX_MS: i128 = 253_402_300_799_000;

#[derive(Debug)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn new(offset_ms: i64) -> Self {
        Self {
            offset_ms: AtomicI64::new(offset_ms),
        }
    }

    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since the Unix epoch by the sandbox clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms_shifted(0)
    }

    /// Like [`Clock::now_ms`], shifted by `extra_ms` more.
    pub(crate) fn now_ms_shifted(&self, extra_ms: i64) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let system = i128::try_from(system).unwrap_or(MAX_MS);
        let ms = system + i128::from(self.offset_ms()) + i128::from(extra_ms);
        // Clamped to 0..=MAX_MS, so the conversion cannot fail.
        u64::try_from(ms.clamp(0, MAX_MS)).unwrap_or(0)
    }

    /// Seconds since the Unix epoch by the sandbox clock.
    pub(crate) fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// The HTTP `Date` for the sandbox clock shifted by `extra_ms`.
    pub(crate) fn http_date(&self, extra_ms: i64) -> String {
        let ms = self.now_ms_shifted(extra_ms);
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// `YYYY-MM-DD HH:MM:SS+00:00`, the On-Premises `expires_after` format, for Unix seconds.
// Independent of `nx_protocol::onprem::format_expires_after` on purpose (like signing.rs and
// media_table.rs): the judge keeps its own code so that it catches the client's bugs.
pub(crate) fn format_expires_after(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_format() {
        assert_eq!(format_expires_after(0), "1970-01-01 00:00:00+00:00");
        // 2018-03-01 15:29:26 UTC, the example of Meta's documentation.
        assert_eq!(
            format_expires_after(1_519_918_166),
            "2018-03-01 15:29:26+00:00"
        );
        assert_eq!(
            format_expires_after(951_782_400),
            "2000-02-29 00:00:00+00:00"
        );
    }

    #[test]
    fn offsets_never_panic() {
        for offset in [i64::MIN, -1, 0, 1, i64::MAX] {
            let clock = Clock::new(offset);
            let _ = clock.http_date(i64::MAX);
            let _ = clock.http_date(i64::MIN);
            let _ = format_expires_after(clock.now_secs());
        }
        let clock = Clock::new(-5_000);
        let real = Clock::new(0).now_ms();
        let behind = clock.now_ms();
        assert!(real >= behind + 4_000 && real <= behind + 6_000);
    }
}
