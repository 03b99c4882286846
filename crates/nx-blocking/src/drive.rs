//! The one loop that carries out a [`Call`]'s steps on ureq: send, read, write, sleep. Every
//! decision (what to send, how long to wait, whether to retry) is the call machine's; the
//! client types only answer the steps it cannot take itself (a token, a fresh download URL).

use std::io::{self, Read, Write};

use nx_protocol::OutgoingBody;
use nx_protocol::call::{Call, Kind, Now, Read as ReadAs, Step};
use nx_protocol::error::Error;

use crate::client::{instant, mono, now};
use crate::deadline;
use crate::sink::{Direct, Sink, Target, TempFile};
use crate::transport::{self, Http, SendError};
use crate::upload::UploadSource;

/// Runs `call` until it ends or asks for what only the client can give (a token, a fresh
/// URL): that step is returned.
pub(crate) fn drive<K: Kind, W: Write + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    mut source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) -> Step<K::Output> {
    loop {
        let at = mono();
        match call.poll(Now { at, wall: now() }) {
            Step::Send(request) => {
                // The attempt's number is on its events, not on the call's span: recording it
                // there once per attempt made a retried call's log lines say
                // `attempt=1 attempt=2`. Nothing is timed when nothing is logged.
                let logged = tracing::enabled!(tracing::Level::DEBUG);
                let n = call.attempt();
                if logged && let Some(url) = call.download_url() {
                    tracing::debug!(attempt = n, url = %url, "downloading");
                }
                let sent = logged.then(std::time::Instant::now);
                attempt(http, call, request, at, source.as_deref_mut(), target);
                if let Some(sent) = sent {
                    let latency_ms = sent.elapsed().as_millis() as u64;
                    match call.failure() {
                        None => tracing::debug!(attempt = n, latency_ms, "call succeeded"),
                        Some(error) => tracing::debug!(
                            attempt = n,
                            latency_ms,
                            status = error.status().map(|s| s.as_u16()),
                            code = error.api_code().map(|c| c.get()),
                            error = %error,
                            "attempt failed"
                        ),
                    }
                }
                // An attempt that ended the call: its result, without another poll (and the
                // two clock readings it takes).
                if let Some(result) = call.take_result() {
                    return Step::Done(result);
                }
            }
            Step::Sleep(until) => std::thread::sleep(until.saturating_sub(mono())),
            step => return step,
        }
    }
}

/// Feeds a failure of the HTTP stack to the call.
fn failed<K: Kind>(call: &mut Call<K>, failure: SendError) {
    match failure {
        SendError::Failed(error) => call.failed(error),
        SendError::Timeout => call.timed_out(mono()),
        SendError::Stalled => call.stalled(),
        SendError::ConnectTimedOut => call.connect_timed_out(),
    }
}

/// One attempt, begun at `at` (the poll that asked for it): send the request, read its answer
/// as the call says, feed back what happened.
///
/// An attempt whose only limit is the agent's own `request_timeout` from `at` (an API call
/// whose call deadline is further away: [`crate::transport::Limits::agents`]) is left to the
/// agent's timeout, which starts when ureq does, microseconds after `at`: its limit cannot move
/// (only a transfer's head limit and a download's deadline do), so the connector's cap and the
/// progress reports, which would say the same, are skipped. What the connection delivers for
/// the answer's body is counted either way.
fn attempt<K: Kind, W: Write + ?Sized>(
    http: &Http,
    call: &mut Call<K>,
    request: http::Request<OutgoingBody>,
    at: std::time::Duration,
    source: Option<&mut UploadSource>,
    target: &mut Target<'_, W>,
) {
    let limits = http.limits(call.watch(), at);
    let capped = !limits.agents();
    let _cleared = deadline::Cleared;
    // A connection ureq opens for it must be ready by then (whoever's limits apply after).
    deadline::connect_by(instant(call.watch().connect_deadline()));
    if capped {
        deadline::set(Some(instant(call.watch().hard_limit())));
    }
    let opened = match (request.body(), source) {
        (OutgoingBody::Streamed(_), Some(source)) => match crate::upload::open(source) {
            Ok(opened) => Some(opened),
            Err(error) => return call.failed(error),
        },
        _ => None,
    };
    let sent = {
        let mut progress = |n: u64, done: bool| {
            let now = mono();
            let go_on = call.progress(n, now);
            if done {
                call.sent(now);
            }
            // Once the body is out, the head's limit runs.
            deadline::set(Some(instant(call.watch().hard_limit())));
            go_on
        };
        let progress: Option<&mut dyn FnMut(u64, bool) -> bool> =
            if capped { Some(&mut progress) } else { None };
        http.send(request, opened, &limits, progress)
    };
    let response = match sent {
        Ok(response) => response,
        Err(failure) => return failed(call, failure),
    };
    let (head, body) = response.into_parts();
    // The length ureq reads the body by (none when chunked), from the head it parsed.
    let announced = body.content_length();
    let mut body = body.into_reader();
    let read = call.head(head.status, &head.headers, mono());
    if capped {
        deadline::set(Some(instant(call.watch().hard_limit())));
    }
    if read != ReadAs::Skip {
        deadline::count_body();
    }
    match read {
        ReadAs::Skip => {}
        ReadAs::Whole { max } => match read_capped(call, &mut body, announced, max, capped) {
            Ok(Some(bytes)) => call.whole(head.status, &head.headers, &bytes, mono()),
            Ok(None) => {}
            Err(failure) => failed(call, failure),
        },
        ReadAs::Stream => match target {
            Target::None => call.failed(Error::Config("a streamed answer needs a target".into())),
            Target::Writer(sink) => {
                let sha256 = call.take_sha256();
                if pump(call, &mut body, &mut Direct::new(&mut **sink, sha256))
                    && let Err(e) = sink.flush()
                {
                    call.failed(Error::io("writing the download", e));
                }
            }
            Target::Path(path) => {
                let (temp, mut file) = match TempFile::create(path) {
                    Ok(created) => created,
                    Err(error) => return call.failed(error),
                };
                if pump(call, &mut body, &mut file)
                    && let Err(error) = temp.commit(file)
                {
                    call.failed(error);
                }
            }
        },
    }
}

/// A whole answer of at most `max` bytes (`announced` by its head, or not), read straight into
/// its buffer; a larger one is refused as soon as it is announced or exceeded. When `watched`
/// (the attempt's limits are not the agent's own), the call checks its limits after every read
/// (`None`: one passed).
fn read_capped<K: Kind>(
    call: &mut Call<K>,
    body: &mut impl Read,
    announced: Option<u64>,
    max: u64,
    watched: bool,
) -> Result<Option<Vec<u8>>, SendError> {
    if announced.is_some_and(|len| len > max) {
        return Err(Error::AnswerTooLarge { limit: max }.into());
    }
    // Room for what is announced and the read that finds its end (1 KiB at a time when
    // nothing is), one byte past the limit at most.
    let first = announced.map_or(1024, |len| len + 1).min(max + 1);
    let mut out = Vec::with_capacity(first as usize);
    loop {
        let filled = out.len();
        if out.capacity() == filled {
            out.reserve(1024);
        }
        let room = (out.capacity() - filled) as u64;
        let want = room.min(max + 1 - filled as u64) as usize;
        out.resize(filled + want, 0);
        match body.read(&mut out[filled..]) {
            Ok(0) if deadline::cut_short() => return Err(transport::body_error(cut_short())),
            Ok(0) => {
                out.truncate(filled);
                return Ok(Some(out));
            }
            Ok(n) => {
                deadline::body_read(n);
                out.truncate(filled + n);
                if out.len() as u64 > max {
                    return Err(Error::AnswerTooLarge { limit: max }.into());
                }
                if watched && !call.tick(mono()) {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(filled),
            Err(e) => return Err(transport::body_error(e)),
        }
    }
}

/// A body that ended as the connection was cut ([`deadline::cut_short`]).
fn cut_short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, deadline::CutShort)
}

/// Streams `body` into `sink`, read straight into its buffer, through the call's checks: `true`
/// when it ended and passed them (then the caller finishes the writer).
fn pump<K: Kind>(call: &mut Call<K>, body: &mut impl Read, sink: &mut impl Sink) -> bool {
    loop {
        let buf = sink.buf();
        let n = match body.read(buf) {
            Ok(0) if deadline::cut_short() => {
                failed(call, transport::body_error(cut_short()));
                return false;
            }
            Ok(0) => {
                match sink.sha256() {
                    Ok(Some(sha256)) => call.give_sha256(sha256),
                    Ok(None) => {}
                    Err(e) => {
                        call.failed(Error::io("hashing the download", e));
                        return false;
                    }
                }
                return call.end(mono());
            }
            Ok(n) => {
                deadline::body_read(n);
                n
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failed(call, transport::body_error(e));
                return false;
            }
        };
        if !call.chunk(&buf[..n], mono()) {
            return false;
        }
        if let Err(e) = sink.filled(n) {
            call.failed(Error::io("writing the download", e));
            return false;
        }
    }
}
