//! The HTTP/1 server: accept loop, one task per connection, routing, faults, the log, the
//! `Date` header and graceful shutdown.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Body, Cut};
use crate::config::TS_WINDOW_MS;
use crate::fault::Fault;
use crate::log::{LogEntry, Route, printable};
use crate::pace::Pace;
use crate::raw::{self, Raw};
use crate::request::{MAX_UPLOAD_BODY, drain};
use crate::response::{Outcome, html_error, respond, text};
use crate::shutdown::wait_shutdown;
use crate::state::State;
use crate::tls;

/// The most connections served at once; further ones wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until shutdown, then lets in-flight requests finish for the grace period. With an
/// `acceptor`, every connection starts with a TLS handshake (bounded by
/// [`tls::HANDSHAKE_TIMEOUT`]).
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, acceptor: Option<TlsAcceptor>) {
    let mut shutdown = state.shutdown.clone();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = wait_shutdown(&mut shutdown) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors and the like: breathe, then go on.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = wait_shutdown(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(stream, state).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    // A failed handshake (an untrusting client, a stalled one) just closes.
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(stream, state).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = state.config.shutdown_grace + Duration::from_millis(200);
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// Serves one connection's requests until it closes, a fault takes it over ([`Raw`]), or
/// shutdown (then in-flight requests get the grace period).
async fn serve_connection<IO>(io: IO, state: Arc<State>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = state.shutdown.clone();
    let grace = state.config.shutdown_grace;
    // A request whose fault writes its answer by hand hands it over here.
    let (takeover, mut taken) = mpsc::channel::<(Raw, Pace)>(1);
    let service_state = Arc::clone(&state);
    let service = service_fn(move |req| handle(Arc::clone(&service_state), req, takeover.clone()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = &mut connection => return,
        Some((raw, pace)) = taken.recv() => {
            // The handler waits forever once it has handed over; hyper's side of the
            // connection (and the handler with it) is dropped, the socket kept.
            let io = connection.into_parts().io.into_inner();
            raw::write(io, raw, pace).await;
            return;
        }
        () = wait_shutdown(&mut shutdown) => {}
    }
    Pin::new(&mut connection).graceful_shutdown();
    let _ = tokio::time::timeout(grace, connection).await;
}

/// Which route a request is for.
pub(crate) fn classify(method: &Method, path: &str) -> Route {
    match path {
        "/api/wa/getMedia" => return Route::GetMedia,
        "/api/wa/deleteMedia" => return Route::DeleteMedia,
        "/api/wa/uploadMedia" => return Route::UploadMedia,
        "/api/wa/mt" => return Route::SendMessage,
        "/v1/users/login" if method == Method::POST => return Route::OnPremLogin,
        "/v1/users/logout" if method == Method::POST => return Route::OnPremLogout,
        "/v1/media" if method == Method::POST => return Route::OnPremUpload,
        _ => {}
    }
    if path.starts_with("/oss/") {
        return Route::OssDownload;
    }
    if path.starts_with("/_sandbox/") {
        return Route::Admin;
    }
    if let Some(rest) = path.strip_prefix("/v1/media/") {
        let mut segments = rest.split('/');
        let id = segments.next().unwrap_or("");
        let next = segments.next();
        let more = segments.next().is_some();
        if !id.is_empty() && !more {
            return match (next, method) {
                // HEAD is GET without the body (RFC 9110 §9.3.2): the same status and head.
                (None, m) if m == Method::GET || m == Method::HEAD => Route::OnPremGetMedia,
                (None, &Method::DELETE) => Route::OnPremDeleteMedia,
                (Some("download"), &Method::GET) => Route::OnPremRetryDownload,
                _ => Route::OnPremOther,
            };
        }
        return Route::OnPremOther;
    }
    if path == "/v1" || path.starts_with("/v1/") {
        return Route::OnPremOther;
    }
    Route::Unknown
}

async fn dispatch(state: &Arc<State>, route: Route, req: Request<Incoming>) -> Outcome {
    match route {
        Route::SendMessage => crate::send::handle(state, req).await,
        r if r.is_nxcloud() => crate::nxcloud::handle(state, route, req).await,
        Route::OssDownload => crate::oss::handle(state, req).await,
        r if r.is_onprem() => crate::onprem::handle(state, route, req).await,
        Route::Admin => crate::admin::handle(state, req).await,
        _ => Outcome::new(text(StatusCode::NOT_FOUND, "Not Found")),
    }
}

/// An answer a fault puts in place of the real one.
fn canned(state: &State, route: Route, fault: &Fault) -> Option<Outcome> {
    let out = match fault {
        Fault::ServiceUnavailable => Outcome::new(html_error(StatusCode::SERVICE_UNAVAILABLE)),
        Fault::BadGateway => Outcome::new(html_error(StatusCode::BAD_GATEWAY)),
        Fault::ServiceUnavailableDrip(interval) => {
            let pace = pace(state, *interval);
            Outcome::new(map_body(html_error(StatusCode::SERVICE_UNAVAILABLE), |b| {
                body::trickle(b, pace, false)
            }))
        }
        Fault::EmptyBody => Outcome::new(respond(StatusCode::OK, "application/json", Bytes::new())),
        Fault::InvalidJson => Outcome::new(respond(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(br#"{"code":0,"message":"Request successful","data":{"id":"#),
        )),
        Fault::WrongTypes => Outcome::new(respond(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(crate::fault::WRONG_TYPES_BODY.as_bytes()),
        )),
        Fault::UnknownCode(c) if route.is_onprem() => crate::onprem::error(
            StatusCode::BAD_REQUEST,
            *c,
            "an error code this client does not know (fault)",
        ),
        Fault::UnknownCode(c) => {
            crate::nxcloud::fail(*c, "an error code this client does not know (fault)")
        }
        Fault::Code(c) => crate::nxcloud::fail(*c, "answered by a fault"),
        Fault::WhatsAppError(error) => crate::send::whatsapp_error(error),
        Fault::ClockSkew { skew_ms } => {
            let mut out = crate::nxcloud::fail(
                crate::nxcloud::code::TIMESTAMP_EXPIRED,
                format!(
                    "ts is more than {TS_WINDOW_MS} ms away from the server clock (the server time is in the Date header)"
                ),
            );
            if let Ok(date) = HeaderValue::from_str(&state.clock.http_date(*skew_ms)) {
                out.response.headers_mut().insert(header::DATE, date);
            }
            out
        }
        Fault::Oversize {
            bytes,
            content_length,
        } => {
            let mut response = Response::new(body::oversize(*bytes));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if *content_length {
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(body::oversize_len(*bytes)),
                );
            }
            Outcome::new(response)
        }
        Fault::Redirect { location } => {
            let mut response = respond(StatusCode::FOUND, "text/plain", Bytes::new());
            match HeaderValue::from_str(location) {
                Ok(v) => {
                    response.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => return Some(Outcome::new(html_error(StatusCode::BAD_GATEWAY))),
            }
            Outcome::new(response)
        }
        _ => return None,
    };
    Some(out)
}

fn content_length(response: &Response<Body>) -> u64 {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn map_body(response: Response<Body>, f: impl FnOnce(Body) -> Body) -> Response<Body> {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, f(body))
}

/// Waits `d`; false if shutdown came first.
async fn sleep_unless_shutdown(state: &State, d: Duration) -> bool {
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = wait_shutdown(&mut shutdown) => false,
    }
}

/// One request: faults before, the handler, faults after, `Date`, the log.
async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    takeover: mpsc::Sender<(Raw, Pace)>,
) -> Result<Response<Body>, Cut> {
    let started = Instant::now();
    let route = classify(req.method(), req.uri().path());
    let method = printable(req.method().as_str().as_bytes(), 16);
    let path = printable(req.uri().path().as_bytes(), 256);
    let action = route
        .is_nxcloud()
        .then(|| {
            req.headers()
                .get("action")
                .map(|v| printable(v.as_bytes(), 64))
        })
        .flatten();
    let ts = action
        .as_ref()
        .and(req.headers().get("ts"))
        .map(|v| printable(v.as_bytes(), 32));
    let fault = if route.is_emulated() {
        state.faults.decide(route)
    } else {
        None
    };
    let fault_name = fault.as_ref().map(Fault::name);
    let log = |status: Option<u16>, code: Option<i64>, note: Option<String>| {
        state.log.push(LogEntry {
            seq: 0,
            route,
            method: method.clone(),
            path: path.clone(),
            action: action.clone(),
            ts: ts.clone(),
            status,
            code,
            latency: started.elapsed(),
            fault: fault_name,
            note,
        });
    };

    match &fault {
        Some(Fault::Latency(d)) if !sleep_unless_shutdown(&state, *d).await => {
            log(None, None, Some("shutting down".into()));
            return Err(Cut("shutting down"));
        }
        Some(Fault::Latency(_)) => {}
        Some(Fault::Stall) => {
            sleep_unless_shutdown(&state, state.config.fault_hold_limit).await;
            log(None, None, Some("stalled, then closed".into()));
            return Err(Cut("stalled"));
        }
        Some(Fault::Reset) => {
            log(None, None, Some("closed without an answer".into()));
            return Err(Cut("reset by a fault"));
        }
        Some(Fault::EndlessProcessing(interval)) => {
            let note = format!("102 Processing every {interval:?}, never a final answer");
            log(Some(102), None, Some(note));
            return hand_over(&takeover, Raw::EndlessProcessing, pace(&state, *interval)).await;
        }
        Some(f) => {
            if let Some(mut out) = canned(&state, route, f) {
                let cap = match route {
                    Route::UploadMedia | Route::OnPremUpload => MAX_UPLOAD_BODY,
                    _ => state.config.max_json_body as u64,
                };
                if !drain(req.into_body(), cap).await {
                    out = out.close();
                }
                set_date(&state, &mut out.response);
                log(Some(out.response.status().as_u16()), out.code, out.note);
                return Ok(out.response);
            }
        }
        None => {}
    }

    let Outcome {
        mut response,
        code,
        note,
    } = dispatch(&state, route, req).await;

    match &fault {
        Some(Fault::ResetAfterProcessing) => {
            log(
                None,
                code,
                Some("handled, then closed without an answer".into()),
            );
            return Err(Cut("reset after processing by a fault"));
        }
        Some(Fault::Truncated) => {
            let len = content_length(&response);
            let (announce, keep) = if len > 0 { (len, len / 2) } else { (16, 0) };
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(announce));
            response = map_body(response, |b| body::truncate(b, keep));
        }
        Some(Fault::Drip(interval)) => {
            let pace = pace(&state, *interval);
            response = map_body(response, |b| body::trickle(b, pace, false));
        }
        Some(Fault::TinyChunks(interval)) => {
            response.headers_mut().remove(header::CONTENT_LENGTH);
            let pace = pace(&state, *interval);
            response = map_body(response, |b| body::trickle(b, pace, true));
        }
        Some(Fault::PartialContent) => response = partial(response),
        Some(Fault::NoContent) => {
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response.headers_mut().remove(header::TRANSFER_ENCODING);
            response = map_body(response, |_| body::full(Bytes::new()));
        }
        Some(Fault::HeaderDrip(interval) | Fault::EndlessTrailers(interval)) => {
            set_date(&state, &mut response);
            log(Some(response.status().as_u16()), code, note);
            let raw = match fault {
                Some(Fault::HeaderDrip(_)) => Raw::HeaderDrip(response),
                _ => Raw::EndlessTrailers(response),
            };
            return hand_over(&takeover, raw, pace(&state, *interval)).await;
        }
        Some(Fault::CorruptBody) => {
            let len = content_length(&response);
            if len > 0 {
                response = map_body(response, |b| body::corrupt(b, len / 2));
            }
        }
        _ => {}
    }
    set_date(&state, &mut response);
    log(Some(response.status().as_u16()), code, note);
    Ok(response)
}

/// A trickling fault's pace: `interval` steps within the configured hold limit.
fn pace(state: &State, interval: Duration) -> Pace {
    Pace::new(
        interval,
        state.config.fault_hold_limit,
        state.shutdown.clone(),
    )
}

/// Gives the connection to the connection task, which writes `raw` itself; never returns
/// otherwise (hyper drops this future with its side of the connection).
async fn hand_over(
    takeover: &mpsc::Sender<(Raw, Pace)>,
    raw: Raw,
    pace: Pace,
) -> Result<Response<Body>, Cut> {
    if takeover.send((raw, pace)).await.is_err() {
        return Err(Cut("the connection has ended"));
    }
    std::future::pending().await
}

/// [`Fault::PartialContent`]: `206` with the first part of `response`.
fn partial(response: Response<Body>) -> Response<Body> {
    let len = content_length(&response);
    let keep = if len > 200 { 100 } else { (len / 2).max(1) }.min(len);
    let range = match keep {
        0 => "bytes */0".to_owned(),
        _ => format!("bytes 0-{}/{len}", keep - 1),
    };
    let mut response = map_body(response, |b| body::prefix(b, keep));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(keep));
    if let Ok(range) = HeaderValue::from_str(&range) {
        headers.insert(header::CONTENT_RANGE, range);
    }
    response
}

/// Every answer carries the sandbox clock's `Date` (unless a fault set its own).
fn set_date(state: &State, response: &mut Response<Body>) {
    if !response.headers().contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_str(&state.clock.http_date(0))
    {
        response.headers_mut().insert(header::DATE, date);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        let delete = Method::DELETE;
        assert_eq!(classify(&post, "/api/wa/getMedia"), Route::GetMedia);
        assert_eq!(classify(&get, "/api/wa/getMedia"), Route::GetMedia);
        assert_eq!(classify(&post, "/api/wa/getmedia"), Route::Unknown);
        assert_eq!(classify(&post, "/api/wa/mt"), Route::SendMessage);
        assert_eq!(classify(&get, "/oss/abc"), Route::OssDownload);
        assert_eq!(classify(&post, "/v1/users/login"), Route::OnPremLogin);
        assert_eq!(classify(&get, "/v1/users/login"), Route::OnPremOther);
        assert_eq!(classify(&post, "/v1/media"), Route::OnPremUpload);
        assert_eq!(classify(&get, "/v1/media/x"), Route::OnPremGetMedia);
        assert_eq!(
            classify(&Method::HEAD, "/v1/media/x"),
            Route::OnPremGetMedia
        );
        assert_eq!(
            classify(&Method::HEAD, "/v1/media/x/download"),
            Route::OnPremOther
        );
        assert_eq!(classify(&delete, "/v1/media/x"), Route::OnPremDeleteMedia);
        assert_eq!(
            classify(&get, "/v1/media/x/download"),
            Route::OnPremRetryDownload
        );
        assert_eq!(classify(&get, "/v1/media/../users"), Route::OnPremOther);
        assert_eq!(
            classify(&get, "/v1/media/..%2Fusers"),
            Route::OnPremGetMedia
        );
        assert_eq!(classify(&get, "/v1/media/"), Route::OnPremOther);
        assert_eq!(classify(&get, "/v1/media/x/download/y"), Route::OnPremOther);
        assert_eq!(classify(&post, "/v1/media/x/download"), Route::OnPremOther);
        assert_eq!(classify(&get, "/v1/users"), Route::OnPremOther);
        assert_eq!(classify(&get, "/_sandbox/log"), Route::Admin);
        assert_eq!(classify(&get, "/"), Route::Unknown);
    }
}
