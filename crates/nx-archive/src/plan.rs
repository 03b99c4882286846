//! The archive's decisions, as plain functions of their inputs: what to do with an item given
//! its manifest row, how to read an error, whether to try again, when a delete is allowed.

use std::time::Duration;

use nx_protocol::download::IntegrityError;
use nx_protocol::error::Error;

use crate::manifest::{Failure, FailureKind, Row, Status};

/// What a run does with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: an earlier run stored it (and, if asked, deleted it).
    Skip,
    /// Fetch, verify and store it.
    Fetch,
    /// It is stored; delete it from the API (after checking the object is still there).
    Delete,
}

/// What to do with an item whose last manifest row is `previous`. Failed items are tried
/// again; stored ones are never fetched twice.
///
/// ```
/// use nx_archive::{decide, Action};
/// assert_eq!(decide(None, false), Action::Fetch);
/// ```
pub fn decide(previous: Option<&Row>, delete_after: bool) -> Action {
    match previous {
        None => Action::Fetch,
        Some(row) => match row.status {
            Status::Failed => Action::Fetch,
            Status::Stored if delete_after && may_delete(row) => Action::Delete,
            // A stored row without the digest and key a delete needs is fetched again rather
            // than trusted (a hand-edited manifest, say); content addressing makes it cheap.
            Status::Stored if delete_after => Action::Fetch,
            Status::Stored | Status::Deleted => Action::Skip,
        },
    }
}

/// Whether the media of `row` may be deleted from the API: only once its object is stored,
/// verified (a SHA-256 is recorded) and the row saying so is durable in the manifest.
pub fn may_delete(row: &Row) -> bool {
    row.status == Status::Stored && row.sha256.is_some() && row.key.is_some()
}

/// How an error reads in the manifest.
pub fn failure_of(error: &Error) -> Failure {
    let kind = match error {
        Error::InvalidInput(_) => FailureKind::Input,
        Error::Integrity(IntegrityError::TooLarge { .. }) => FailureKind::TooLarge,
        Error::Integrity(_) => FailureKind::Integrity,
        Error::Response(r) if r.is_not_found() || is_nxcloud_unknown_media(error) => {
            FailureKind::NotFound
        }
        Error::Response(_) | Error::Clock(_) | Error::AnswerTooLarge { .. } => FailureKind::Api,
        Error::Timeout { .. } | Error::Connect { .. } | Error::Tls { .. } => FailureKind::Network,
        Error::Transport { .. } => FailureKind::Network,
        _ => FailureKind::Other,
    };
    let code = match error {
        Error::Response(r) => r
            .api_code()
            .map(|c| c.get())
            .or_else(|| r.meta_error().map(|e| e.code.get())),
        _ => None,
    };
    Failure {
        kind,
        message: error.to_string(),
        http_status: error.status().map(|s| s.as_u16()),
        code,
    }
}

/// NXCloud answers -1 for an unknown or deleted media id (and for other vendor failures: the
/// reading taken here is "not found", which the message keeps verbatim).
fn is_nxcloud_unknown_media(error: &Error) -> bool {
    error.api_code().is_some_and(|c| c.get() == -1)
}

/// Transfer attempts per item and run, unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// After attempt `attempt` (1-based) of at most `max_attempts` failed with `failure`: the
/// delay before the next attempt, or `None` to record the failure.
///
/// The clients already retry what failed before a byte reached the destination; an attempt
/// here starts over with a fresh upload, for what they cannot retry: a transfer cut or
/// corrupted midway (network, length or SHA-256 mismatch) and a failing store. An id the API
/// does not know, a refused input, an oversized file or another API answer does not improve.
///
/// ```
/// use nx_archive::{retry_delay, Failure, FailureKind};
/// let cut = Failure { kind: FailureKind::Network, message: String::new(), http_status: None, code: None };
/// assert_eq!(retry_delay(&cut, 1, 3), Some(std::time::Duration::from_millis(250)));
/// assert_eq!(retry_delay(&cut, 3, 3), None);
/// ```
pub fn retry_delay(failure: &Failure, attempt: u32, max_attempts: u32) -> Option<Duration> {
    let transient = matches!(
        failure.kind,
        FailureKind::Network | FailureKind::Integrity | FailureKind::Storage
    );
    if !transient || attempt >= max_attempts {
        return None;
    }
    Some(Duration::from_millis(
        250u64 << attempt.saturating_sub(1).min(4),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nx_protocol::download::Sha256Digest;
    use nx_protocol::{ApiCode, ResponseError};

    fn row(status: Status, verified: bool) -> Row {
        Row {
            id: "m".into(),
            line: 1,
            status,
            sha256: verified.then(|| Sha256Digest::of(b"x").to_string()),
            size: Some(1),
            mime_type: None,
            key: verified.then(|| "k.bin".to_owned()),
            attempts: 1,
            reason: None,
        }
    }

    #[test]
    fn what_each_row_leads_to() {
        let cases = [
            (None, false, Action::Fetch),
            (None, true, Action::Fetch),
            (Some(row(Status::Failed, false)), true, Action::Fetch),
            (Some(row(Status::Stored, true)), false, Action::Skip),
            (Some(row(Status::Stored, true)), true, Action::Delete),
            (Some(row(Status::Stored, false)), true, Action::Fetch),
            (Some(row(Status::Stored, false)), false, Action::Skip),
            (Some(row(Status::Deleted, true)), true, Action::Skip),
            (Some(row(Status::Deleted, true)), false, Action::Skip),
        ];
        for (previous, delete_after, expected) in cases {
            assert_eq!(
                decide(previous.as_ref(), delete_after),
                expected,
                "{previous:?} delete_after={delete_after}"
            );
        }
        assert!(!may_delete(&row(Status::Failed, true)));
        assert!(!may_delete(&row(Status::Deleted, true)));
    }

    #[test]
    fn errors_read_as_their_kinds_and_only_transient_ones_are_retried() {
        let mismatch = Error::Integrity(IntegrityError::Sha256Mismatch {
            expected: Sha256Digest::of(b"a"),
            actual: Sha256Digest::of(b"b"),
        });
        let unknown = Error::Response(ResponseError::Api {
            code: ApiCode::new(-1),
            message: "media not found".into(),
            status: http::StatusCode::OK,
            whatsapp: None,
        });
        let too_large = Error::Integrity(IntegrityError::TooLarge { limit: 1, size: 2 });
        let timeout = Error::Timeout {
            phase: nx_async::Phase::Body,
            limit: nx_async::Limit::Call,
            after: Duration::from_secs(1),
            host: Some("127.0.0.1:9000".into()),
            proxy: None,
        };
        let cases = [
            (mismatch, FailureKind::Integrity, true),
            (unknown, FailureKind::NotFound, false),
            (too_large, FailureKind::TooLarge, false),
            (timeout, FailureKind::Network, true),
        ];
        for (error, kind, retried) in cases {
            let failure = failure_of(&error);
            assert_eq!(failure.kind, kind, "{error}");
            assert_eq!(failure.message, error.to_string());
            assert_eq!(retry_delay(&failure, 1, 3).is_some(), retried, "{error}");
            assert_eq!(retry_delay(&failure, 3, 3), None);
        }
        let unknown = failure_of(&Error::Response(ResponseError::Api {
            code: ApiCode::new(-1),
            message: String::new(),
            status: http::StatusCode::OK,
            whatsapp: None,
        }));
        assert_eq!((unknown.code, unknown.http_status), (Some(-1), Some(200)));
        let delays: Vec<u64> = (1..=6)
            .map(|a| {
                let f = failure_of(&Error::Transport {
                    source: "cut".into(),
                });
                retry_delay(&f, a, 10).unwrap().as_millis() as u64
            })
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000]);
    }
}
