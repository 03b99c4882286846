//! The call machine's limits that move while a request runs (a transfer's head limit once its
//! body is sent, a download's deadline once its length is announced, an error answer's limit),
//! which ureq's per-request timeouts, fixed when the request starts, cannot follow.
//!
//! The agent's connector chain ends with [`DeadlineConnector`], whose transport caps every wait
//! for the socket at the current thread's limit ([`set`]): a blocking call does its I/O on the
//! caller's thread, so the limit in force is the one of the call that thread is running. A
//! capped wait that runs out is ureq's `Timeout::Global`, which the driver hands to the call
//! machine to name.

use std::cell::Cell;
use std::time::Instant;

use ureq::Timeout;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

thread_local! {
    static LIMIT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets the limit of the call running on this thread (`None`: none).
pub(crate) fn set(limit: Option<Instant>) {
    LIMIT.with(|cell| cell.set(limit));
}

/// Clears this thread's limit when dropped, however the attempt ends.
pub(crate) struct Cleared;

impl Drop for Cleared {
    fn drop(&mut self) {
        set(None);
    }
}

/// The last connector of the agent's chain: wraps the transport (TCP, or TLS over it) so that
/// no wait outlasts the thread's limit.
#[derive(Debug)]
pub(crate) struct DeadlineConnector;

impl<In: Transport> Connector<In> for DeadlineConnector {
    type Out = Capped<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(Capped))
    }
}

/// A transport whose waits end at the thread's limit.
#[derive(Debug)]
pub(crate) struct Capped<T>(T);

fn capped(mut timeout: NextTimeout) -> NextTimeout {
    if let Some(limit) = LIMIT.with(Cell::get) {
        let left = limit.saturating_duration_since(Instant::now());
        if left < *timeout.after {
            timeout.after = left.into();
            timeout.reason = Timeout::Global;
        }
    }
    timeout
}

impl<T: Transport> Transport for Capped<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.0.transmit_output(amount, capped(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.0.await_input(capped(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}
