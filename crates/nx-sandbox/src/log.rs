//! The request log: what was asked, what was answered, which fault fired. Never secrets, never
//! `sign` values, never URL query strings, never `Authorization` headers.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most entries kept; older ones are dropped first.
pub const LOG_CAPACITY: usize = 10_000;

/// A route the sandbox serves or a kind of POST it sends. Faults target routes (see
/// [`crate::Target`]) and log entries name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Route {
    /// `POST /api/wa/getMedia`.
    GetMedia,
    /// `POST /api/wa/deleteMedia`.
    DeleteMedia,
    /// `POST /api/wa/uploadMedia`.
    UploadMedia,
    /// `POST /api/wa/mt`: sending a message.
    SendMessage,
    /// `GET /oss/<key>?Expires=..`: the download URL getMedia hands out.
    OssDownload,
    /// `POST /v1/users/login`.
    OnPremLogin,
    /// `POST /v1/users/logout`.
    OnPremLogout,
    /// `POST /v1/media`.
    OnPremUpload,
    /// `GET /v1/media/{id}`.
    OnPremGetMedia,
    /// `DELETE /v1/media/{id}`.
    OnPremDeleteMedia,
    /// `GET /v1/media/{id}/download`.
    OnPremRetryDownload,
    /// Any other `/v1/...` request (answered 401 or 404 with Meta's error shape).
    OnPremOther,
    /// `/_sandbox/...`: the sandbox's own admin endpoints (never faulted).
    Admin,
    /// Any other path (404).
    Unknown,
    /// An outgoing POST of the NXCloud inbound-message webhook.
    InboundWebhook,
    /// An outgoing POST of an On-Premises notification (retry-download result).
    OnPremCallback,
}

impl Route {
    /// Every emulated API route: the ones [`crate::Target::Any`] matches.
    pub const EMULATED: [Route; 11] = [
        Route::GetMedia,
        Route::DeleteMedia,
        Route::UploadMedia,
        Route::SendMessage,
        Route::OssDownload,
        Route::OnPremLogin,
        Route::OnPremLogout,
        Route::OnPremUpload,
        Route::OnPremGetMedia,
        Route::OnPremDeleteMedia,
        Route::OnPremRetryDownload,
    ];

    /// A short name (`getMedia`, `oss`, `onprem.login`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Route::GetMedia => "getMedia",
            Route::DeleteMedia => "deleteMedia",
            Route::UploadMedia => "uploadMedia",
            Route::SendMessage => "mt",
            Route::OssDownload => "oss",
            Route::OnPremLogin => "onprem.login",
            Route::OnPremLogout => "onprem.logout",
            Route::OnPremUpload => "onprem.upload",
            Route::OnPremGetMedia => "onprem.get",
            Route::OnPremDeleteMedia => "onprem.delete",
            Route::OnPremRetryDownload => "onprem.download",
            Route::OnPremOther => "onprem.other",
            Route::Admin => "admin",
            Route::Unknown => "unknown",
            Route::InboundWebhook => "webhook.inbound",
            Route::OnPremCallback => "webhook.onprem",
        }
    }

    /// Whether this is an emulated API route (faults can apply).
    pub fn is_emulated(self) -> bool {
        Self::EMULATED.contains(&self)
    }

    /// Whether this is one of NXCloud's media API routes (answered in the envelope, signed).
    pub(crate) fn is_nxcloud(self) -> bool {
        matches!(
            self,
            Route::GetMedia | Route::DeleteMedia | Route::UploadMedia | Route::SendMessage
        )
    }

    /// Whether this is a request to the On-Premises API (answered in Meta's error shape); not
    /// the outgoing [`Route::OnPremCallback`].
    pub(crate) fn is_onprem(self) -> bool {
        matches!(
            self,
            Route::OnPremLogin
                | Route::OnPremLogout
                | Route::OnPremUpload
                | Route::OnPremGetMedia
                | Route::OnPremDeleteMedia
                | Route::OnPremRetryDownload
                | Route::OnPremOther
        )
    }

    /// Whether this is a POST the sandbox sent (rather than a request it answered).
    pub fn is_outgoing(self) -> bool {
        matches!(self, Route::InboundWebhook | Route::OnPremCallback)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One request the sandbox answered, or one POST it sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogEntry {
    /// Position in the log, from 1, never reused.
    pub seq: u64,
    /// Which route.
    pub route: Route,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query (printable ASCII, at most 256 characters).
    pub path: String,
    /// The NXCloud `action` header as sent (printable, at most 64 characters), if any.
    pub action: Option<String>,
    /// The NXCloud `ts` header as sent (printable, at most 32 characters), if any: lets tests
    /// see that every retry was signed afresh. Not a secret.
    pub ts: Option<String>,
    /// The HTTP status answered (or, for outgoing POSTs, received); `None` when the connection
    /// was closed without an answer.
    pub status: Option<u16>,
    /// The NXCloud envelope `code` or the first Meta error `code` answered, if any.
    pub code: Option<i64>,
    /// Time until the answer's head was ready (body streaming not included); for outgoing
    /// POSTs, the whole delivery.
    pub latency: Duration,
    /// The name of the fault that fired ([`crate::Fault::name`]), if one did.
    pub fault: Option<&'static str>,
    /// A short, secret-free note (why a request was refused, delivery failures, ...).
    pub note: Option<String>,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} [{}]",
            self.seq, self.method, self.path, self.route
        )?;
        if let Some(action) = &self.action {
            write!(f, " action={action}")?;
        }
        match self.status {
            Some(status) => write!(f, " -> {status}")?,
            None => f.write_str(" -> (no answer)")?,
        }
        if let Some(code) = self.code {
            write!(f, " code={code}")?;
        }
        write!(f, " {}ms", self.latency.as_millis())?;
        if let Some(fault) = self.fault {
            write!(f, " fault={fault}")?;
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<LogEntry>,
    next_seq: u64,
    faults: BTreeMap<&'static str, u64>,
}

/// The sandbox's request log, shared with the running server. Holds the last
/// [`LOG_CAPACITY`] entries.
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog")
            .field("len", &self.len())
            .finish()
    }
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    pub(crate) fn push(&self, mut entry: LogEntry) {
        let mut inner = self.lock();
        inner.next_seq += 1;
        entry.seq = inner.next_seq;
        if let Some(fault) = entry.fault {
            *inner.faults.entry(fault).or_default() += 1;
        }
        if inner.entries.len() == LOG_CAPACITY {
            inner.entries.pop_front();
        }
        inner.entries.push_back(entry);
    }

    /// A copy of the entries, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The entries of one route, oldest first.
    pub fn for_route(&self, route: Route) -> Vec<LogEntry> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.route == route)
            .cloned()
            .collect()
    }

    /// The most recent entry.
    pub fn last(&self) -> Option<LogEntry> {
        self.lock().entries.back().cloned()
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times each fault fired since the start (or the last [`RequestLog::clear`]),
    /// by [`crate::Fault::name`]; counts survive entries being dropped for capacity.
    pub fn fault_counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().faults.clone()
    }

    /// How many faults fired in all.
    pub fn faults_fired(&self) -> u64 {
        self.lock().faults.values().sum()
    }

    /// Forgets every entry and fault count (sequence numbers keep growing).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.faults.clear();
    }
}

/// Keeps printable ASCII only, at most `max` characters.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes
        .iter()
        .take(max)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    if bytes.len() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(route: Route, fault: Option<&'static str>) -> LogEntry {
        LogEntry {
            seq: 0,
            route,
            method: "POST".into(),
            path: "/x".into(),
            action: None,
            ts: None,
            status: Some(200),
            code: Some(0),
            latency: Duration::from_millis(3),
            fault,
            note: None,
        }
    }

    #[test]
    fn bounded_and_counted() {
        let log = RequestLog::default();
        for _ in 0..LOG_CAPACITY + 5 {
            log.push(entry(Route::GetMedia, Some("reset")));
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.entries()[0].seq, 6);
        assert_eq!(log.fault_counts()["reset"], (LOG_CAPACITY + 5) as u64);
        assert!(log.last().unwrap().to_string().contains("fault=reset"));
        log.clear();
        assert!(log.is_empty());
        assert_eq!(log.faults_fired(), 0);
        assert_eq!(printable(b"a\r\nb\xff", 10), "a??b?");
        assert_eq!(printable(b"abcdef", 3), "abc…");
    }
}
