//! A request body as a stream of data chunks, handed out one chunk per poll, with a cap on how
//! much may be read ahead of what the consumer has taken.
//!
//! `multer` reads its input greedily (everything that is ready, in one go) and buffers part
//! headers until they end. Fed through this stream, it sees one chunk at a time, and a form
//! whose parser stops producing output (no boundary, endless part headers) fails once
//! [`MAX_READ_AHEAD`] bytes have gone in without any coming out, so memory stays bounded by about
//! one chunk plus that cap.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Incoming;

use crate::body::{BoxError, Cut};
use crate::request::MAX_UPLOAD_BODY;

fn not_progressing() -> BoxError {
    Box::new(Cut("the form's structure is not progressing"))
}

/// How many bytes may go into the parser without it producing a field or a chunk.
pub(crate) const MAX_READ_AHEAD: u64 = 1024 * 1024;

/// Shared between the stream and its consumer: bytes fed since the consumer last made progress.
#[derive(Clone, Default)]
pub(crate) struct Progress(Arc<AtomicU64>);

impl Progress {
    /// The consumer got something out of the parser.
    pub(crate) fn made(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// Whether the read-ahead cap was hit.
    pub(crate) fn exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed) > MAX_READ_AHEAD
    }
}

pub(crate) struct Paced {
    body: Incoming,
    yielded: bool,
    progress: Progress,
    /// Bytes read in all.
    total: u64,
    /// The read-ahead cap was hit: the rest of the body is read and thrown away (up to the
    /// upload cap) so the client can finish sending and read the answer, then the stream fails.
    tripped: bool,
}

impl Paced {
    pub(crate) fn new(body: Incoming, progress: Progress) -> Self {
        Self {
            body,
            yielded: false,
            progress,
            total: 0,
            tripped: false,
        }
    }
}

impl Stream for Paced {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.yielded {
            // Let the consumer take the last chunk before reading another.
            this.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            match hyper::body::Body::poll_frame(Pin::new(&mut this.body), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) if this.tripped => {
                    return Poll::Ready(Some(Err(not_progressing())));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.total += data.len() as u64;
                    if this.tripped {
                        if this.total > MAX_UPLOAD_BODY {
                            return Poll::Ready(Some(Err(not_progressing())));
                        }
                        continue;
                    }
                    let fed = this
                        .progress
                        .0
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if fed > MAX_READ_AHEAD {
                        this.tripped = true;
                        continue;
                    }
                    this.yielded = true;
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}
