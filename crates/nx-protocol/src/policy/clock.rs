//! Clock skew: NXCloud refuses a `ts` more than 60 s away from its own clock (code 1004). The
//! answer's HTTP `Date` header says what the server's clock reads, so a transport can correct
//! its `ts` and send the call once more.
//!
//! ```
//! use nx_protocol::policy::clock::{correction_after_1004, within_tolerance, ClockOffset};
//! use nx_protocol::Timestamp;
//!
//! // This machine's clock is two minutes slow: it reads 08:04:40 when the server's reads 08:06:40.
//! let local_now = Timestamp::from_millis(1_663_747_480_000);
//! let server_now = Timestamp::from_millis(1_663_747_600_000);
//! assert!(!within_tolerance(local_now, server_now)); // so NXCloud answered 1004
//! let offset = correction_after_1004(Some("Wed, 21 Sep 2022 08:06:40 GMT"), local_now).unwrap();
//! assert_eq!(offset, ClockOffset::from_millis(120_500)); // + 0.5 s: see offset_from_date
//! assert!(within_tolerance(offset.apply(local_now), server_now));
//! ```
//!
//! The transport keeps the [`ClockOffset`] (per client, not per call) and applies it to every
//! later `ts`, so one correction serves all later calls.

use std::time::{Duration, UNIX_EPOCH};

use crate::time::Timestamp;

/// The largest difference between `ts` and the server's clock that NXCloud accepts, in ms.
pub const MAX_SKEW_MS: u64 = 60_000;

/// Whether `ts` is within [`MAX_SKEW_MS`] of `server_now` (either side, inclusive): the check
/// NXCloud makes before answering 1004, and the one the sandbox makes.
///
/// ```
/// use nx_protocol::policy::clock::within_tolerance;
/// use nx_protocol::Timestamp;
/// let server = Timestamp::from_millis(1_000_000);
/// assert!(within_tolerance(Timestamp::from_millis(940_000), server));
/// assert!(within_tolerance(Timestamp::from_millis(1_060_000), server));
/// assert!(!within_tolerance(Timestamp::from_millis(1_060_001), server));
/// ```
pub fn within_tolerance(ts: Timestamp, server_now: Timestamp) -> bool {
    ts.as_millis().abs_diff(server_now.as_millis()) <= MAX_SKEW_MS
}

/// How far the server's clock is ahead of this machine's: server minus local, in milliseconds
/// (negative when the local clock is fast).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClockOffset(i64);

impl ClockOffset {
    /// No difference.
    pub const ZERO: Self = Self(0);

    /// An offset of `ms` milliseconds (server minus local).
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// The offset in milliseconds (server minus local).
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The offset between a server time and a local time read at the same moment.
    pub fn between(server_now: Timestamp, local_now: Timestamp) -> Self {
        let diff = i128::from(server_now.as_millis()) - i128::from(local_now.as_millis());
        Self(clamp_i64(diff))
    }

    /// The server's time when the local clock reads `local_now`: `local_now + offset`, saturating
    /// at 0 and at `u64::MAX` milliseconds.
    pub const fn apply(self, local_now: Timestamp) -> Timestamp {
        Timestamp::from_millis(local_now.as_millis().saturating_add_signed(self.0))
    }
}

/// Why no clock correction could be computed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The 1004 answer had no `Date` header.
    #[error(
        "the server rejected the timestamp (code 1004) and sent no Date header to correct it; check this machine's clock (NTP)"
    )]
    NoDate,
    /// The `Date` header is not an HTTP date (the value, shortened and with control characters
    /// removed).
    #[error(
        "the server's Date header `{0}` is not a valid HTTP date, so the clock cannot be corrected from it; check this machine's clock (NTP)"
    )]
    BadDate(String),
}

impl ClockError {
    fn bad_date(value: &str) -> Self {
        ClockError::BadDate(value.chars().filter(|c| !c.is_control()).take(64).collect())
    }
}

/// The offset between the server's clock, as its HTTP `Date` header shows it, and `local_now`,
/// the local time read when the answer arrived. Pass the raw local clock, not a time already
/// corrected by an earlier offset: the result replaces that offset, it does not add to it.
///
/// The header is parsed with the `httpdate` crate: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// and the two obsolete forms HTTP recipients must accept. Its resolution is **one second**: the
/// server's clock was somewhere in `[date, date + 1 s)`, so the offset is taken from the middle,
/// `date + 500 ms`, and is accurate to ±0.5 s plus the answer's travel time (far inside the 60 s
/// that NXCloud tolerates).
///
/// ```
/// use nx_protocol::policy::clock::offset_from_date;
/// use nx_protocol::Timestamp;
/// // Local clock at 1994-11-06 08:47:37.000 UTC, two minutes behind the server.
/// let local = Timestamp::from_millis(784_111_657_000);
/// let offset = offset_from_date("Sun, 06 Nov 1994 08:49:37 GMT", local).unwrap();
/// assert_eq!(offset.as_millis(), 120_500);
/// assert!(offset_from_date("yesterday", local).is_err());
/// ```
pub fn offset_from_date(
    date_header: &str,
    local_now: Timestamp,
) -> Result<ClockOffset, ClockError> {
    let server = httpdate::parse_http_date(date_header.trim())
        .map_err(|_| ClockError::bad_date(date_header))?;
    let since_epoch = server
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ClockError::bad_date(date_header))?;
    let server_ms = since_epoch.as_millis() + HALF_SECOND.as_millis();
    let diff = i128::try_from(server_ms).unwrap_or(i128::MAX) - i128::from(local_now.as_millis());
    Ok(ClockOffset(clamp_i64(diff)))
}

/// The correction to apply after an answer of code 1004 (timestamp expired), from that answer's
/// `Date` header (`None` when it had none). An error means no correction is possible: report it
/// (its message tells the user to check the machine's clock) instead of retrying.
///
/// ```
/// use nx_protocol::policy::clock::{correction_after_1004, ClockError};
/// use nx_protocol::Timestamp;
/// let err = correction_after_1004(None, Timestamp::from_millis(0)).unwrap_err();
/// assert_eq!(err, ClockError::NoDate);
/// assert!(err.to_string().contains("NTP"));
/// ```
pub fn correction_after_1004(
    date_header: Option<&str>,
    local_now: Timestamp,
) -> Result<ClockOffset, ClockError> {
    offset_from_date(date_header.ok_or(ClockError::NoDate)?, local_now)
}

const HALF_SECOND: Duration = Duration::from_millis(500);

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fmt(ms: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
    }

    #[test]
    fn rfc_examples_and_obsolete_forms() {
        let local = Timestamp::from_millis(784_111_777_000); // 1994-11-06 08:49:37 UTC
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            " Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                offset_from_date(date, local),
                Ok(ClockOffset::from_millis(500)),
                "{date}"
            );
        }
    }

    #[test]
    fn bad_dates_are_errors_with_a_printable_value() {
        let local = Timestamp::from_millis(0);
        for date in [
            "",
            "1663747602",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "日曜日",
        ] {
            assert!(
                matches!(offset_from_date(date, local), Err(ClockError::BadDate(_))),
                "{date}"
            );
        }
        let long = format!("x\r\n{}", "y".repeat(500));
        let Err(ClockError::BadDate(shown)) = offset_from_date(&long, local) else {
            panic!("accepted");
        };
        assert_eq!(shown.chars().count(), 64);
        assert!(!shown.contains('\n'));
        assert_eq!(
            correction_after_1004(Some("nope"), local),
            Err(ClockError::BadDate("nope".into()))
        );
    }

    #[test]
    fn no_date_message() {
        assert_eq!(
            ClockError::NoDate.to_string(),
            "the server rejected the timestamp (code 1004) and sent no Date header to correct it; check this machine's clock (NTP)"
        );
    }

    #[test]
    fn apply_saturates() {
        let max = Timestamp::from_millis(u64::MAX);
        assert_eq!(ClockOffset::from_millis(i64::MAX).apply(max), max);
        assert_eq!(
            ClockOffset::from_millis(i64::MIN).apply(Timestamp::from_millis(5)),
            Timestamp::from_millis(0)
        );
        assert_eq!(
            ClockOffset::from_millis(-5).apply(Timestamp::from_millis(7)),
            Timestamp::from_millis(2)
        );
        assert_eq!(ClockOffset::ZERO.apply(max), max);
        assert_eq!(ClockOffset::default(), ClockOffset::ZERO);
        assert_eq!(
            ClockOffset::between(Timestamp::from_millis(0), max),
            ClockOffset::from_millis(i64::MIN)
        );
    }

    #[test]
    fn tolerance_is_inclusive_and_total() {
        let s = Timestamp::from_millis(MAX_SKEW_MS);
        assert!(within_tolerance(Timestamp::from_millis(0), s));
        assert!(!within_tolerance(
            Timestamp::from_millis(0),
            Timestamp::from_millis(60_001)
        ));
        assert!(!within_tolerance(
            Timestamp::from_millis(u64::MAX),
            Timestamp::from_millis(0)
        ));
        assert!(within_tolerance(
            Timestamp::from_millis(u64::MAX),
            Timestamp::from_millis(u64::MAX)
        ));
    }

    /// Up to the end of year 9998 (`httpdate` formats dates before year 9999 only).
    const LAST_MS: u64 = 253_370_764_799_000;

    proptest! {
        #[test]
        fn offset_round_trips_within_a_second(
            server in 0u64..LAST_MS,
            // Offsets are i64 ms: local clocks past year 292 million are out of scope.
            local in prop_oneof![0u64..LAST_MS, 0..=i64::MAX as u64],
        ) {
            let offset = offset_from_date(&fmt(server), Timestamp::from_millis(local)).unwrap();
            let corrected = offset.apply(Timestamp::from_millis(local));
            prop_assert!(corrected.as_millis().abs_diff(server) <= 1000, "{corrected:?} vs {server}");
            prop_assert!(within_tolerance(corrected, Timestamp::from_millis(server)));
        }

        #[test]
        fn offsets_round_trip_through_millis(ms in any::<i64>(), local in any::<u64>()) {
            let offset = ClockOffset::from_millis(ms);
            prop_assert_eq!(offset.as_millis(), ms);
            let applied = offset.apply(Timestamp::from_millis(local));
            let exact = i128::from(local) + i128::from(ms);
            prop_assert_eq!(i128::from(applied.as_millis()), exact.clamp(0, i128::from(u64::MAX)));
        }

        #[test]
        fn any_header_is_handled(date in "\\PC{0,40}", local in any::<u64>()) {
            let _ = offset_from_date(&date, Timestamp::from_millis(local));
        }
    }
}
