//! A request's head and its in-memory body in one write.
//!
//! ureq writes a request's head (request line and headers) and then its body in two socket
//! writes; with `TCP_NODELAY`, as ureq sets it, they leave as two segments, and the server
//! wakes for the first only to wait for the second. When the driver says the request it sends
//! next has a body already in memory ([`Next::head_with_body`]), [`Corked`] keeps a copy of the
//! head instead of sending it, and sends it in front of the body's first write: one system call
//! and one segment for the whole getMedia, instead of two. Nothing waits for it: the body's
//! bytes are at hand, and ureq writes them right after the head.
//!
//! A head kept back is sent before anything else happens on the connection: before the next
//! read (ureq reads the answer only after the body, but an `Expect: 100-continue` or an error
//! answer read early would find it sent), and a connection still holding one is never pooled
//! (`is_open` says it is not).

use std::cell::Cell;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

thread_local! {
    /// The request this thread sends next has a body in memory: keep its head back.
    static HEAD_WITH_BODY: Cell<bool> = const { Cell::new(false) };
}

/// The driver's word about the request it sends next, on this thread, until dropped.
pub(crate) struct Next(());

impl Next {
    /// The request sent next has a body that is already in memory (not empty): its head is
    /// sent with the body's first write.
    pub(crate) fn head_with_body() -> Self {
        HEAD_WITH_BODY.with(|h| h.set(true));
        Next(())
    }
}

impl Drop for Next {
    fn drop(&mut self) {
        HEAD_WITH_BODY.with(|h| h.set(false));
    }
}

/// A connector of the agent's chain: wraps the transport (TCP, or TLS over it) in [`Corked`].
#[derive(Debug)]
pub(crate) struct CorkConnector;

impl<In: Transport> Connector<In> for CorkConnector {
    type Out = Corked<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Corked {
            inner,
            held: Vec::new(),
        }))
    }
}

/// A transport that can keep a request's head back for the body's write (see the module).
#[derive(Debug)]
pub(crate) struct Corked<T> {
    inner: T,
    /// A head written by ureq but not yet sent (its buffer is kept for the next one).
    held: Vec<u8>,
}

impl<T: Transport> Corked<T> {
    /// Sends the head kept back, if any, alone.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() {
            return Ok(());
        }
        let len = self.held.len();
        self.inner.buffers().output()[..len].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(len, timeout)
    }
}

impl<T: Transport> Transport for Corked<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() {
            if amount > 0 && HEAD_WITH_BODY.with(|h| h.replace(false)) {
                // The head: kept until the body's write.
                let head = &self.inner.buffers().output()[..amount];
                self.held.extend_from_slice(head);
                return Ok(());
            }
            return self.inner.transmit_output(amount, timeout);
        }
        // The body's first write, at the start of the output buffer: the head goes in front
        // of it when both fit (a small body does, as getMedia's); else the head goes alone
        // first, the body's bytes put back after it.
        let head = self.held.len();
        let output = self.inner.buffers().output();
        if head + amount > output.len() {
            let body = output[..amount].to_vec();
            self.flush(timeout)?;
            self.inner.buffers().output()[..amount].copy_from_slice(&body);
            return self.inner.transmit_output(amount, timeout);
        }
        output.copy_within(..amount, head);
        output[..head].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(head + amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.held.is_empty() && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::LazyBuffers;

    /// A transport that records every write (what it sent, in one piece) and reads nothing.
    #[derive(Debug)]
    struct Recording {
        buffers: LazyBuffers,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Recording {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            self.sent.push(self.buffers.output()[..amount].to_vec());
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }

        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn corked(output_size: usize) -> Corked<Recording> {
        Corked {
            inner: Recording {
                buffers: LazyBuffers::new(1024, output_size),
                sent: Vec::new(),
            },
            held: Vec::new(),
        }
    }

    /// Writes `bytes` as ureq does: into the output buffer, then transmits them.
    fn write(t: &mut Corked<Recording>, bytes: &[u8]) {
        t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        t.transmit_output(bytes.len(), NextTimeout::default())
            .unwrap();
    }

    #[test]
    fn the_head_goes_out_with_the_body() {
        let mut t = corked(1024);
        {
            let _next = Next::head_with_body();
            write(&mut t, b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
            assert!(t.inner.sent.is_empty(), "the head is kept back");
            assert!(!t.is_open(), "a connection holding a head is not pooled");
            write(&mut t, b"{}");
        }
        assert_eq!(
            t.inner.sent,
            [b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}".to_vec()]
        );
        assert!(t.is_open());
        // The next request, without the driver's word, is written as ureq writes it.
        write(&mut t, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(t.inner.sent.len(), 2);
        assert_eq!(t.inner.sent[1], b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_kept_head_is_sent_before_any_read() {
        let mut t = corked(1024);
        let next = Next::head_with_body();
        write(&mut t, b"HEAD");
        drop(next);
        t.await_input(NextTimeout::default()).unwrap();
        assert_eq!(t.inner.sent, [b"HEAD".to_vec()]);
    }

    #[test]
    fn a_body_that_fills_the_buffer_follows_the_head_alone() {
        let mut t = corked(8);
        let _next = Next::head_with_body();
        write(&mut t, b"HEAD");
        write(&mut t, b"12345678");
        assert_eq!(t.inner.sent, [b"HEAD".to_vec(), b"12345678".to_vec()]);
    }

    #[test]
    fn the_word_is_for_one_request_on_this_thread() {
        let next = Next::head_with_body();
        drop(next);
        let mut t = corked(64);
        write(&mut t, b"HEAD");
        assert_eq!(t.inner.sent, [b"HEAD".to_vec()], "not kept once dropped");
    }
}
