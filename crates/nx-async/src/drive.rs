//! The one loop that carries out a [`Call`]'s steps on hyper and tokio: send, read, write,
//! sleep. Every decision (what to send, how long to wait, whether to retry) is the call
//! machine's; the client types only answer the steps it cannot take itself (a token, a fresh
//! download URL).

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nx_protocol::OutgoingBody;
use nx_protocol::call::{Call, Kind, Now, Read, Step};
use nx_protocol::error::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::{instant, mono, now};
use crate::sink::{Target, TempFile};
use crate::transport::{self, Http, Progress};
use crate::upload::UploadSource;

/// Runs `call` until it ends or asks for what only the client can give (a token, a fresh
/// URL): that step is returned.
pub(crate) async fn drive<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    mut source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) -> Step<K::Output> {
    loop {
        match call.poll(Now {
            at: mono(),
            wall: now(),
        }) {
            Step::Send(request) => {
                tracing::Span::current().record("attempt", call.attempt());
                if let Some(url) = call.download_url() {
                    tracing::debug!(url = %url, "downloading");
                }
                let sent = std::time::Instant::now();
                attempt(http, call, request, source.as_deref_mut(), target).await;
                let latency_ms = sent.elapsed().as_millis() as u64;
                match call.failure() {
                    None => tracing::debug!(latency_ms, "call succeeded"),
                    Some(error) => tracing::debug!(
                        latency_ms,
                        status = error.status().map(|s| s.as_u16()),
                        code = error.api_code().map(|c| c.get()),
                        error = %error,
                        "attempt failed"
                    ),
                }
            }
            Step::Sleep(until) => tokio::time::sleep_until(instant(until).into()).await,
            step => return step,
        }
    }
}

/// One attempt: send the request, read its answer as the call says, feed back what happened.
async fn attempt<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    request: http::Request<OutgoingBody>,
    source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) {
    let (parts, outgoing) = request.into_parts();
    let (reader, progress) = match (&outgoing, source) {
        (OutgoingBody::Streamed(body), Some(source)) => match crate::upload::open(source).await {
            Ok(reader) => (
                Some(reader),
                Some(Arc::new(Progress::new(body.content_length()))),
            ),
            Err(error) => return call.failed(error),
        },
        _ => (None, None),
    };
    let body = match transport::body_of(outgoing, reader, progress.as_ref()) {
        Ok(body) => body,
        Err(error) => return call.failed(error),
    };
    let request = http::Request::from_parts(parts, body);
    let Some(response) = watched(call, transport::send(http, request), progress.as_deref()).await
    else {
        return;
    };
    let (head, body) = response.into_parts();
    match call.head(head.status, &head.headers, mono()) {
        Read::Skip => {}
        Read::Whole { max } => {
            if let Some(bytes) = watched(call, read_capped(body, &head.headers, max), None).await {
                call.whole(head.status, &head.headers, &bytes, mono());
            }
        }
        Read::Stream => match target {
            Target::None => call.failed(Error::Config("a streamed answer needs a target".into())),
            Target::Writer(sink) => {
                if pump(call, body, &mut **sink).await
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
                if pump(call, body, &mut file).await
                    && let Err(error) = temp.commit(file).await
                {
                    call.failed(error);
                }
            }
        },
    }
}

/// Runs `work` within the call's limits, waking at [`nx_protocol::call::Watch::wake_at`] to
/// let the call check them (and to report a streamed upload's `progress`); `None` when it
/// failed or a limit passed (the call knows which).
async fn watched<K: Kind, T>(
    call: &mut Call<K>,
    work: impl Future<Output = Result<T, Error>>,
    progress: Option<&Progress>,
) -> Option<T> {
    tokio::pin!(work);
    let mut seen = 0;
    let mut sent = false;
    loop {
        let wake = call.watch().wake_at();
        tokio::select! {
            biased;
            result = &mut work => {
                return match result {
                    Ok(value) => Some(value),
                    Err(error) => {
                        call.failed(error);
                        None
                    }
                };
            }
            () = async {
                match progress {
                    Some(progress) => progress.sent().await,
                    None => std::future::pending().await,
                }
            }, if !sent => {
                sent = true;
                report(call, progress, &mut seen);
            }
            () = tokio::time::sleep_until(instant(wake).into()) => {
                if !report(call, progress, &mut seen) || !call.tick(mono()) {
                    return None;
                }
            }
        }
    }
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
/// or exceeded, without buffering it.
async fn read_capped(
    mut body: Incoming,
    headers: &http::HeaderMap,
    max: u64,
) -> Result<Bytes, Error> {
    let announced = nx_protocol::head::content_length(headers);
    if announced.is_some_and(|len| len > max) {
        return Err(Error::AnswerTooLarge { limit: max });
    }
    let mut out = BytesMut::with_capacity(announced.unwrap_or(1024).min(max) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport {
            source: Box::new(e),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > max {
                return Err(Error::AnswerTooLarge { limit: max });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Streams `body` into `sink` chunk by chunk through the call's checks: `true` when it ended
/// and passed them (then the caller finishes the writer).
async fn pump<K: Kind, W: AsyncWrite + Unpin + ?Sized>(
    call: &mut Call<K>,
    mut body: Incoming,
    sink: &mut W,
) -> bool {
    loop {
        let frame = watched(
            call,
            async {
                body.frame()
                    .await
                    .transpose()
                    .map_err(|e| Error::Transport {
                        source: Box::new(e),
                    })
            },
            None,
        )
        .await;
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
        if let Err(e) = sink.write_all(&chunk).await {
            call.failed(Error::io("writing the download", e));
            return false;
        }
    }
}
