//! The call machine's limits that move while a request runs (a transfer's head limit once its
//! body is sent, a download's deadline once its length is announced, an error answer's limit),
//! which ureq's per-request timeouts, fixed when the request starts, cannot follow; and the
//! count of what the connection delivers for an answer's body, which ureq does not bound.
//!
//! The agent's connector chain ends with [`DeadlineConnector`], whose transport caps every wait
//! for the socket at the current thread's limit ([`set`]): a blocking call does its I/O on the
//! caller's thread, so the limit in force is the one of the call that thread is running. A
//! capped wait that runs out is ureq's `Timeout::Global`, which the driver hands to the call
//! machine to name. Every wait it hands on is rounded up to a whole 10 ms, so that ureq, which
//! sets the socket's timeout whenever the value changes, does not set it again on every request.
//!
//! The same transport counts the bytes each read delivers once the driver starts reading an
//! answer's body ([`count_body`]), against the body bytes the driver has been handed
//! ([`body_read`]): chunk framing and trailers beyond nx-protocol's bound
//! ([`nx_protocol::call::framing`]) fail the read at once. Without it, a server sending
//! trailer lines without end is read until the call's deadline (gigabytes on loopback), since
//! ureq caps neither trailers nor chunk extensions and hands over no bytes while it reads them.
//!
//! A new connection is bounded by the attempt's connect deadline ([`connect_by`]), from the
//! start of resolving to the end of the TLS handshake: [`ConnectBound`], first in the chain
//! around ureq's own connectors, hands them that deadline as their connect timeout (ureq's own
//! runs from the end of resolving, and its proxy step gives each read of the `CONNECT` answer
//! the whole timeout afresh), lowers the thread's limit to it while they run (the proxy's
//! connection is made by the agent's whole chain, so its waits are [`Capped`]), and turns a
//! timeout there into [`ConnectTimedOut`]; [`CachingResolver`](crate::resolver) caps a lookup
//! the same way. A pooled connection is reused without calling the connector: no bound, no
//! phase.
//!
//! And it notes when the connection ends uncleanly while a body is read ([`cut_short`]): a TLS
//! peer gone without `close_notify`, a reset. ureq takes either for the end of a body read to
//! the connection's close (no `Content-Length`, not chunked), so a cut answer would pass for a
//! whole one; the driver fails it instead, as hyper does.
//!
//! Last, it spares ureq one of the two socket probes it makes per request (see
//! [`Capped`]'s `is_open`): a connection returned to the pool as an answer's body ends is pooled
//! unprobed, and probed when ureq next takes it out.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use nx_protocol::call::framing;
use ureq::Timeout;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// What the attempt running on this thread set: its limits, and the answer's byte counts.
struct Attempt {
    limit: Cell<Option<Instant>>,
    /// When a connection it opens must be ready ([`nx_protocol::call::Watch::connect_deadline`]).
    connect_by: Cell<Option<Instant>>,
    /// Body bytes the driver was handed; `None` until it starts reading a body.
    body: Cell<Option<u64>>,
    /// Bytes the connection delivered since then.
    delivered: Cell<u64>,
    /// The connection ended uncleanly since then.
    cut: Cell<bool>,
}

thread_local! {
    static ATTEMPT: Attempt = const {
        Attempt {
            limit: Cell::new(None),
            connect_by: Cell::new(None),
            body: Cell::new(None),
            delivered: Cell::new(0),
            cut: Cell::new(false),
        }
    };
}

/// Sets the limit of the call running on this thread (`None`: none).
pub(crate) fn set(limit: Option<Instant>) {
    ATTEMPT.with(|a| a.limit.set(limit));
}

/// Sets when a connection the call running on this thread opens must be ready.
pub(crate) fn connect_by(deadline: Instant) {
    ATTEMPT.with(|a| a.connect_by.set(Some(deadline)));
}

/// `timeout` capped at the thread's connect deadline, counted from `since` (a step of making the
/// connection: resolving, connecting).
pub(crate) fn within_connect(mut timeout: NextTimeout, since: Instant) -> NextTimeout {
    if let Some(by) = ATTEMPT.with(|a| a.connect_by.get()) {
        let left = by.saturating_duration_since(since);
        if left < *timeout.after {
            timeout.after = left.into();
            timeout.reason = Timeout::Connect;
        }
    }
    timeout
}

/// A timeout while making a connection (whichever of ureq's timeouts or our caps it was), as
/// [`ConnectTimedOut`]; any other error as it is.
pub(crate) fn connect_error(error: ureq::Error) -> ureq::Error {
    if matches!(error, ureq::Error::Timeout(_)) {
        ureq::Error::Io(io::Error::new(io::ErrorKind::TimedOut, ConnectTimedOut))
    } else {
        error
    }
}

/// A new connection (its name's lookup included) was not ready by the connect deadline. The
/// call machine names the limit ([`nx_protocol::call::Call::connect_timed_out`]).
#[derive(Debug)]
pub(crate) struct ConnectTimedOut;

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection was not ready by the connect deadline")
    }
}

impl std::error::Error for ConnectTimedOut {}

/// The driver starts reading an answer's body: from now on the connection's reads are counted.
pub(crate) fn count_body() {
    ATTEMPT.with(|a| {
        a.body.set(Some(0));
        a.delivered.set(0);
        a.cut.set(false);
    });
}

/// Whether the connection ended uncleanly (no TLS `close_notify`, a reset) while the body was
/// read: then a body that "ended" was cut short.
pub(crate) fn cut_short() -> bool {
    ATTEMPT.with(|a| a.cut.get())
}

/// The error of a body [`cut_short`].
#[derive(Debug)]
pub(crate) struct CutShort;

impl std::fmt::Display for CutShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection ended without a clean close (no TLS close_notify, or a reset) before the end of an answer read to the close: it is cut short")
    }
}

impl std::error::Error for CutShort {}

/// The driver was handed `n` more bytes of the body.
pub(crate) fn body_read(n: usize) {
    ATTEMPT.with(|a| {
        if let Some(body) = a.body.get() {
            a.body.set(Some(body.saturating_add(n as u64)));
        }
    });
}

/// Clears this thread's limit and counts when dropped, however the attempt ends.
pub(crate) struct Cleared;

impl Drop for Cleared {
    fn drop(&mut self) {
        ATTEMPT.with(|a| {
            a.limit.set(None);
            a.connect_by.set(None);
            a.body.set(None);
        });
    }
}

/// The first connector of the agent's chain, around ureq's own (a proxy's `CONNECT`, TCP, TLS):
/// the connection they make must be ready by the thread's connect deadline.
#[derive(Debug)]
pub(crate) struct ConnectBound<C>(pub(crate) C);

impl<C: Connector<()>> Connector<()> for ConnectBound<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(by) = ATTEMPT.with(|a| a.connect_by.get()) else {
            return self.0.connect(details, chained);
        };
        // TCP and the TLS handshake wait by this timeout, counted from `now`.
        let since = match details.now {
            ureq::unversioned::transport::time::Instant::Exact(now) => now,
            _ => Instant::now(),
        };
        let bounded = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: within_connect(details.timeout, since),
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        // A proxy's `CONNECT` answer is read through the proxy's connection, made by the whole
        // chain: its waits are capped at the thread's limit, the connect deadline meanwhile.
        let limit = ATTEMPT.with(|a| {
            let limit = a.limit.get();
            a.limit.set(Some(limit.map_or(by, |limit| limit.min(by))));
            limit
        });
        let connected = self.0.connect(&bounded, chained);
        ATTEMPT.with(|a| a.limit.set(limit));
        connected.map_err(connect_error)
    }
}

/// The last connector of the agent's chain: wraps the transport (TCP, or TLS over it) so that
/// no wait outlasts the thread's limit and an answer's body delivers no more than its bound.
#[derive(Debug)]
pub(crate) struct DeadlineConnector;

impl<In: Transport> Connector<In> for DeadlineConnector {
    type Out = Capped<In>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // ureq reads up to its input buffer ahead of the body it hands over.
        let read_ahead = details.config.input_buffer_size() as u64;
        Ok(chained.map(|inner| Capped { inner, read_ahead }))
    }
}

/// A transport whose waits end at the thread's limit, and whose reads for an answer's body are
/// counted.
#[derive(Debug)]
pub(crate) struct Capped<T> {
    inner: T,
    /// Bytes ureq may hold read but not yet handed over (its input buffer).
    read_ahead: u64,
}

/// The step socket waits are set in (see [`capped`]).
const STEP: Duration = Duration::from_millis(10);

/// `timeout` capped at the thread's limit, then rounded up to a whole [`STEP`] (zero stays zero,
/// so a passed limit still fails at once).
///
/// ureq sets the socket's timeout to what is left of the attempt before each read and write,
/// with a system call whenever that value changed, and it changes on every call: three calls
/// per getMedia, for a value nothing needs to the nanosecond. Rounded, the value repeats from
/// one request to the next (a fresh attempt starts with the same limit), so the calls stop. A
/// wait may then end up to one step after the limit; the kernel rounds the socket's timeout
/// up to its own tick (1 to 10 ms) anyway.
fn capped(mut timeout: NextTimeout) -> NextTimeout {
    if let Some(limit) = ATTEMPT.with(|a| a.limit.get()) {
        let left = limit.saturating_duration_since(Instant::now());
        if left < *timeout.after {
            timeout.after = left.into();
            timeout.reason = Timeout::Global;
        }
    }
    if let ureq::unversioned::transport::time::Duration::Exact(after) = &mut timeout.after {
        *after = round_up(*after);
    }
    timeout
}

/// `after` rounded up to a whole [`STEP`] (which divides a second).
fn round_up(after: Duration) -> Duration {
    let step = STEP.subsec_nanos();
    match after.subsec_nanos() % step {
        0 => after,
        over => after.saturating_add(Duration::from_nanos(u64::from(step - over))),
    }
}

/// Counts `n` bytes the connection delivered: an error once an answer's body came with more
/// than [`framing::check`] allows.
fn delivered(n: usize, read_ahead: u64) -> Result<(), ureq::Error> {
    ATTEMPT.with(|a| {
        let Some(body) = a.body.get() else {
            return Ok(());
        };
        let delivered = a.delivered.get().saturating_add(n as u64);
        a.delivered.set(delivered);
        framing::check(delivered, body, read_ahead)
            .map_err(|excess| ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, excess)))
    })
}

impl<T: Transport> Transport for Capped<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, capped(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        // What a read appends to the unconsumed input is what it delivered.
        let before = self.inner.buffers().input().len();
        let more = self
            .inner
            .await_input(capped(timeout))
            .inspect_err(|error| {
                if let ureq::Error::Io(e) = error
                    && matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    )
                {
                    ATTEMPT.with(|a| a.cut.set(a.body.get().is_some()));
                }
            })?;
        let after = self.inner.buffers().input().len();
        delivered(after.saturating_sub(before), self.read_ahead)?;
        Ok(more)
    }

    /// ureq asks this twice per request, each time probing the socket (non-blocking on, a
    /// one-byte read, off: three system calls): as the answer's body ends and it returns the
    /// connection to its pool, and as it takes the connection out for the next request. The
    /// first finds nothing the second would not: what a probe looks for (bytes after the body,
    /// the peer's close) stays in the socket until then. So while this thread reads an
    /// answer's body, the only time ureq returns a connection, the connection is pooled
    /// unprobed, and the probe before its next use decides. (Bytes after the body that ureq
    /// already read still keep it out of the pool: ureq checks its buffer first.)
    fn is_open(&mut self) -> bool {
        ATTEMPT.with(|a| a.body.get().is_some()) || self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_rounded_up_to_whole_steps() {
        let ms = Duration::from_millis;
        for (after, rounded) in [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_nanos(1), ms(10)),
            (ms(10), ms(10)),
            (ms(10) + Duration::from_nanos(1), ms(20)),
            (
                Duration::from_secs(30) - Duration::from_micros(35),
                Duration::from_secs(30),
            ),
            (Duration::from_secs(2) + ms(995), Duration::from_secs(3)),
            (Duration::MAX, Duration::MAX),
        ] {
            assert_eq!(round_up(after), rounded, "{after:?}");
        }
    }

    #[test]
    fn a_passed_limit_stays_passed_and_no_limit_stays_none() {
        let at = |after| NextTimeout {
            after,
            ..NextTimeout::default()
        };
        use ureq::unversioned::transport::time::Duration as UreqDuration;
        let zero = capped(at(UreqDuration::Exact(Duration::ZERO)));
        assert!(zero.after.is_zero());
        let never = capped(at(UreqDuration::NotHappening));
        assert!(never.after.is_not_happening());
        // The thread's limit caps the wait, rounded up, and names it.
        set(Some(Instant::now() + ms_(1500)));
        let capped_wait = capped(at(UreqDuration::Exact(Duration::from_secs(30))));
        set(None);
        assert_eq!(capped_wait.reason, Timeout::Global);
        assert!(*capped_wait.after <= ms_(1500), "{capped_wait:?}");
        assert!(*capped_wait.after >= ms_(1400), "{capped_wait:?}");
        assert_eq!(capped_wait.after.subsec_nanos() % STEP.subsec_nanos(), 0);
    }

    #[test]
    fn connecting_waits_end_at_the_connect_deadline() {
        use ureq::unversioned::transport::time::Duration as UreqDuration;
        let wait = NextTimeout {
            after: UreqDuration::Exact(Duration::from_secs(10)),
            reason: Timeout::Global,
            ..NextTimeout::default()
        };
        // No deadline set: ureq's own timeout.
        assert_eq!(
            *within_connect(wait, Instant::now()).after,
            Duration::from_secs(10)
        );
        let since = Instant::now();
        connect_by(since + ms_(1500));
        let capped = within_connect(wait, since);
        assert_eq!(
            (*capped.after, capped.reason),
            (ms_(1500), Timeout::Connect)
        );
        // A nearer timeout of ureq's stays as it is.
        let near = NextTimeout {
            after: UreqDuration::Exact(ms_(200)),
            ..wait
        };
        assert_eq!(*within_connect(near, since).after, ms_(200));
        drop(Cleared);
        assert_eq!(*within_connect(wait, since).after, Duration::from_secs(10));
        // Every timeout while connecting is the connect deadline's; other errors stay.
        for reason in [Timeout::Global, Timeout::Connect, Timeout::Resolve] {
            let error = connect_error(ureq::Error::Timeout(reason));
            assert!(
                matches!(&error, ureq::Error::Io(e) if e.get_ref().is_some_and(|e| e.is::<ConnectTimedOut>())),
                "{error:?}"
            );
        }
        assert!(matches!(
            connect_error(ureq::Error::HostNotFound),
            ureq::Error::HostNotFound
        ));
    }

    /// A transport that only counts how often it is probed.
    #[derive(Debug)]
    struct Probed {
        buffers: ureq::unversioned::transport::LazyBuffers,
        probes: usize,
    }

    impl Transport for Probed {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }

        fn is_open(&mut self) -> bool {
            self.probes += 1;
            false
        }
    }

    #[test]
    fn a_connection_returned_as_a_body_ends_is_probed_when_next_taken() {
        let mut capped = Capped {
            inner: Probed {
                buffers: ureq::unversioned::transport::LazyBuffers::new(64, 64),
                probes: 0,
            },
            read_ahead: 64,
        };
        // Taken for a request: probed, and the probe decides.
        assert!(!capped.is_open());
        assert_eq!(capped.inner.probes, 1);
        // Returned while this thread reads the answer's body: pooled without a probe.
        {
            let _cleared = Cleared;
            count_body();
            assert!(capped.is_open());
            assert_eq!(capped.inner.probes, 1);
        }
        // The attempt over, the next taking probes again.
        assert!(!capped.is_open());
        assert_eq!(capped.inner.probes, 2);
    }

    fn ms_(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
