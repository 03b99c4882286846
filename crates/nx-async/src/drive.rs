//! The one loop that carries out a [`Call`]'s steps on hyper and tokio: send, read, write,
//! sleep. Every decision (what to send, how long to wait, whether to retry) is the call
//! machine's; the client types only answer the steps it cannot take itself (a token, a fresh
//! download URL).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use nx_protocol::call::{Call, Kind, Now, Read, Step};
use nx_protocol::error::Error;
use nx_protocol::onprem::Token;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use crate::client::{instant, mono, now};
use crate::sink::{Direct, Sink, Target, TempFile};
use crate::transport::{self, Http, Progress, SendError, Start};
use crate::upload::UploadSource;

/// Where [`drive`] stopped: the call's result, or a step only the client can take. The
/// machine's [`Step`] without its `Send` (a request, some 300 bytes), so handing the result up
/// to the client copies a result's size, not a request's.
pub(crate) enum Ended<T> {
    /// The call ended.
    Done(Result<T, Error>),
    /// [`Step::Token`].
    Token { rejected: Option<Token> },
    /// [`Step::RefreshUrl`].
    RefreshUrl,
}

impl<T> Ended<T> {
    /// As [`Step::into_result`].
    pub(crate) fn into_result(self) -> Result<T, Error> {
        match self {
            Ended::Done(result) => result,
            Ended::Token { rejected } => Step::Token { rejected }.into_result(),
            Ended::RefreshUrl => Step::RefreshUrl.into_result(),
        }
    }
}

/// Runs `call` until it ends or asks for what only the client can give (a token, a fresh
/// URL): where it stopped is returned.
///
/// The attempt number is a field of each attempt's events, not of the caller's span: a span
/// field recorded again is appended by `tracing-subscriber`'s formatter (`attempt=1 attempt=2`).
pub(crate) async fn drive<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    mut source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) -> Ended<K::Output> {
    let mut timer = Timer {
        sleep: pin!(None),
        at: Duration::ZERO,
    };
    // The clock as the last attempt read it, when nothing was awaited since.
    let mut read = None;
    loop {
        let at = Option::take(&mut read).unwrap_or_else(mono);
        // Bound by `let`, so the step (a request's size) is not kept across the awaits below.
        let request = match call.poll(Now { at, wall: now() }) {
            Step::Send(request) => request,
            Step::Sleep(until) => {
                poll_fn(|cx| timer.poll_at(until, cx)).await;
                continue;
            }
            Step::Done(result) => return Ended::Done(result),
            Step::Token { rejected } => return Ended::Token { rejected },
            Step::RefreshUrl => return Ended::RefreshUrl,
        };
        if let Some(url) = call.download_url() {
            tracing::debug!(attempt = call.attempt(), url = %url, "downloading");
        }
        // A connection hyper opens for it must be ready by the attempt's connect deadline.
        let connect_by = instant(call.watch().connect_deadline()).into();
        let start = Start::of(http, request, connect_by);
        read = attempt(
            http,
            call,
            &mut timer,
            at,
            start,
            source.as_deref_mut(),
            target,
        )
        .await;
        // Read only when the event is enabled.
        let latency_ms = || mono().saturating_sub(at).as_millis() as u64;
        match call.failure() {
            None => tracing::debug!(
                attempt = call.attempt(),
                latency_ms = latency_ms(),
                "call succeeded"
            ),
            Some(error) => tracing::debug!(
                attempt = call.attempt(),
                latency_ms = latency_ms(),
                status = error.status().map(|s| s.as_u16()),
                code = error.api_code().map(|c| c.get()),
                error = %error,
                "attempt failed"
            ),
        }
        // An answer that ended the call: its result, without another poll (and clock reading).
        if let Some(result) = call.take_result() {
            return Ended::Done(result);
        }
    }
}

/// The call's one tokio timer: made when a wait first has to wait, moved
/// ([`Sleep::reset`]) only when the instant to wake at changes. An API call's attempt arms it
/// once (its wake is the attempt's deadline, whether the answer's head or body is awaited);
/// an answer that is there at once never touches it.
struct Timer<'p> {
    sleep: Pin<&'p mut Option<Sleep>>,
    /// The instant it is set for (on [`mono`]'s line), once made.
    at: Duration,
}

impl Timer<'_> {
    /// Ready once `at` has passed.
    fn poll_at(&mut self, at: Duration, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut().as_pin_mut() {
            Some(sleep) if self.at == at => return sleep.poll(cx),
            Some(sleep) => sleep.reset(instant(at).into()),
            None => self
                .sleep
                .set(Some(tokio::time::sleep_until(instant(at).into()))),
        }
        self.at = at;
        match self.sleep.as_mut().as_pin_mut() {
            Some(sleep) => sleep.poll(cx),
            None => unreachable!("the timer was set just above"),
        }
    }
}

/// One attempt: send the request (`start`ed), read its answer as the call says, feed back what
/// happened. `polled` is the clock the call was polled with for it. An answer read whole
/// returns the clock reading the call was fed with (nothing is awaited after it, so the next
/// poll takes it).
async fn attempt<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    timer: &mut Timer<'_>,
    polled: Duration,
    start: Start,
    source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) -> Option<Duration> {
    let mut at = polled;
    let (send, progress) = match start {
        Start::Sent(send) => (send, None),
        Start::Upload(upload) => {
            let (parts, body, connect_by) = *upload;
            let Some(source) = source else {
                return failed(call, transport::no_source());
            };
            let reader = match crate::upload::open(source).await {
                Ok(reader) => reader,
                Err(error) => return failed(call, error),
            };
            at = mono();
            let progress = Arc::new(Progress::new(body.content_length()));
            let body = transport::streamed(body, reader, progress.clone(), source.path_of());
            let request = http::Request::from_parts(parts, body);
            (transport::send(http, request, connect_by), Some(progress))
        }
    };
    let send = pin!(send);
    let response = watched(call, timer, send, progress.as_deref(), &mut at).await?;
    let (head, body) = response.into_parts();
    match call.head(head.status, &head.headers, at) {
        Read::Skip => {}
        Read::Whole { max } => {
            // An answer in one frame is there with its head: the head's clock reading stands.
            let read = pin!(read_capped(body, max));
            let bytes = watched(call, timer, read, None, &mut at).await?;
            call.whole(head.status, &head.headers, &bytes, at);
            return Some(at);
        }
        // Boxed: its writer's futures would otherwise make every API call's state larger.
        Read::Stream => Box::pin(stream(call, timer, body, target)).await,
    }
    None
}

/// Streams the answer's body into the target, then finishes the writer.
async fn stream<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    call: &mut Call<K>,
    timer: &mut Timer<'_>,
    body: Incoming,
    target: &mut Target<'_, W>,
) {
    match target {
        Target::None => call.failed(Error::Config("a streamed answer needs a target".into())),
        Target::Writer(sink) => {
            if pump(call, timer, body, &mut Direct(&mut **sink)).await
                && let Err(e) = sink.flush().await
            {
                call.failed(Error::io("writing the download", e));
            }
        }
        Target::Path(path) => {
            let (temp, mut file) = match TempFile::create(path) {
                Ok(created) => created,
                Err(error) => return call.failed(error),
            };
            if pump(call, timer, body, &mut file).await
                && let Err(error) = temp.commit(file).await
            {
                call.failed(error);
            }
        }
    }
}

/// Feeds `error` to the call: the attempt failed.
fn failed<K: Kind>(call: &mut Call<K>, error: Error) -> Option<Duration> {
    call.failed(error);
    None
}

/// Runs `work` within the call's limits, waking at [`nx_protocol::call::Watch::wake_at`] to
/// let the call check them (and to report a streamed upload's `progress`); `None` when it
/// failed (fed to the call) or a limit passed (the call knows which). `work` is polled first,
/// so an answer that is already there costs no timer. (Pinned by the caller: a future is not
/// moved again.)
///
/// `at` is the clock when `work` ended: read afresh once it had to wait, else left as the
/// caller's reading (nothing was awaited since).
///
/// A plain function around one [`poll_fn`], not an `async fn`: each API call awaits it twice
/// (head, body), and an async layer's own state and moves cost more than the loop (issue 20).
/// An upload's wait for its body to be all sent is boxed: one allocation per upload attempt.
fn watched<'w, K: Kind, T, E: Into<SendError>>(
    call: &'w mut Call<K>,
    timer: &'w mut Timer<'_>,
    mut work: Pin<&'w mut impl Future<Output = Result<T, E>>>,
    progress: Option<&'w Progress>,
    at: &'w mut Duration,
) -> impl Future<Output = Option<T>> + 'w {
    // Until the streamed body is all sent: the wait for it.
    let mut body_out = progress.map(|progress| Box::pin(progress.sent()));
    let mut seen = 0;
    let mut waited = false;
    // The timer came: the limits are checked after `work` was polled once more, so that what
    // it knows of that instant is heard first (a request still waiting for its new connection
    // when a nearer limit capped the connect limit: a connect-phase timeout, not the answer's).
    let mut due = false;
    poll_fn(move |cx| {
        loop {
            if let Poll::Ready(result) = work.as_mut().poll(cx) {
                if waited {
                    *at = mono();
                }
                return Poll::Ready(match result.map_err(Into::into) {
                    Ok(done) => Some(done),
                    Err(SendError::Failed(error)) => {
                        call.failed(error);
                        None
                    }
                    Err(SendError::ConnectTimedOut) => {
                        call.connect_timed_out();
                        None
                    }
                });
            }
            waited = true;
            if std::mem::take(&mut due)
                && (!report(call, progress, &mut seen) || !call.tick(mono()))
            {
                return Poll::Ready(None);
            }
            if let Some(out) = &mut body_out
                && out.as_mut().poll(cx).is_ready()
            {
                body_out = None;
                report(call, progress, &mut seen);
            }
            let wake = call.watch().wake_at();
            if timer.poll_at(wake, cx).is_pending() {
                return Poll::Pending;
            }
            due = true;
        }
    })
}

/// Feeds a streamed upload's progress to the call: `false` when a limit passed.
fn report<K: Kind>(call: &mut Call<K>, progress: Option<&Progress>, seen: &mut u64) -> bool {
    let Some(progress) = progress else {
        return true;
    };
    let (moved, done) = progress.take(seen);
    let now = mono();
    if !call.progress(moved, now) {
        return false;
    }
    if done {
        call.sent(now);
    }
    true
}

/// A whole answer of at most `max` bytes; a larger one is refused as soon as it is announced
/// or exceeded, without buffering it. An answer in one frame (a small envelope) is returned
/// as hyper read it, without a copy.
async fn read_capped(mut body: Incoming, max: u64) -> Result<Bytes, Error> {
    // hyper's reading of the `Content-Length` (it refuses an answer whose length is not a
    // number, and ends the body at that length).
    let announced = body.size_hint().exact();
    if announced.is_some_and(|len| len > max) {
        return Err(Error::AnswerTooLarge { limit: max });
    }
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport {
            source: Box::new(e),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let held = more.as_ref().map_or(first.len(), BytesMut::len);
        if held as u64 + data.len() as u64 > max {
            return Err(Error::AnswerTooLarge { limit: max });
        }
        match &mut more {
            Some(buf) => buf.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let want = announced.map_or(0, |len| len.min(max) as usize);
                let mut buf = BytesMut::with_capacity(want.max(held + data.len()));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                more = Some(buf);
            }
        }
        // All of an announced length is in: no frame follows (hyper's HTTP/1 body of a
        // known length has no trailers), so the poll that would say so is skipped.
        if body.is_end_stream() {
            break;
        }
    }
    Ok(more.map_or(first, BytesMut::freeze))
}

/// Streams `body` into `sink` chunk by chunk through the call's checks: `true` when it ended
/// and passed them (then the caller finishes the writer).
async fn pump<K: Kind>(
    call: &mut Call<K>,
    timer: &mut Timer<'_>,
    mut body: Incoming,
    sink: &mut impl Sink,
) -> bool {
    loop {
        let next = pin!(async {
            body.frame()
                .await
                .transpose()
                .map_err(|e| Error::Transport {
                    source: Box::new(e),
                })
        });
        // The clock is read afresh for every frame: a stream whose frames never wait still
        // takes time.
        let mut ended = Duration::ZERO;
        let frame = watched(call, timer, next, None, &mut ended).await;
        let chunk = match frame {
            None => return false,
            Some(None) => return call.end(mono()),
            Some(Some(frame)) => match frame.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue, // trailers: nothing to write
            },
        };
        if !call.chunk(&chunk, mono()) {
            return false;
        }
        if let Err(e) = sink.put(chunk).await {
            call.failed(Error::io("writing the download", e));
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nx_protocol::Credentials;
    use nx_protocol::call::{Limit, Phase, Upload};
    use nx_protocol::config::ClientConfig;
    use nx_protocol::wa::GetMedia;

    /// The capped connect's race, played out: the attempt's limit (200 ms) caps the connect
    /// limit (5 s), and the request learns that its connection timed out only when polled at
    /// or after that instant, as hyper's connector does. The poll just before it ends past the
    /// deadline while another worker fires the call's timer meanwhile: the limits are checked
    /// only after the request was polled once more, so the attempt fails in the connect phase,
    /// not waiting for the answer's headers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_limit_is_checked_after_the_work_was_polled_once_more() {
        let mut config = ClientConfig::new(Credentials::new("k", "s"), "test/1");
        config.transport.connect_timeout = Duration::from_secs(5);
        config.transport.request_timeout = Duration::from_millis(200);
        let op = GetMedia::new("8615800001795", "m1");
        let mut call = Call::api(&op, &config, Upload::default());
        let Step::Send(_) = call.poll(Now {
            at: mono(),
            wall: now(),
        }) else {
            panic!("the call sends first");
        };
        let by = instant(call.watch().connect_deadline());
        assert_eq!(call.watch().connect_deadline(), call.watch().wake_at());
        let mut polls = 0;
        let mut work = pin!(std::future::poll_fn(|cx| {
            polls += 1;
            match polls {
                // The timer is armed; poll again at once.
                1 => cx.waker().wake_by_ref(),
                // Not timed out when it looked, but the deadline passed before it returned.
                2 => std::thread::sleep(
                    by.saturating_duration_since(std::time::Instant::now())
                        + Duration::from_millis(300),
                ),
                _ if std::time::Instant::now() >= by => {
                    return Poll::Ready(Err::<(), _>(SendError::ConnectTimedOut));
                }
                _ => {}
            }
            Poll::Pending
        }));
        let mut timer = Timer {
            sleep: pin!(None),
            at: Duration::ZERO,
        };
        let mut at = Duration::ZERO;
        assert!(
            watched(&mut call, &mut timer, work.as_mut(), None, &mut at)
                .await
                .is_none()
        );
        assert!(
            matches!(
                call.failure(),
                Some(Error::Timeout {
                    phase: Phase::Connect,
                    limit: Limit::Attempt,
                    ..
                })
            ),
            "{:?}",
            call.failure()
        );
    }
}
