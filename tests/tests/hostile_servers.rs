//! Servers that misbehave on purpose, over raw TCP on 127.0.0.1: every call ends on time with a
//! typed error, and only a complete `200` is a file. Each case runs against both transports,
//! NXCloud downloads and (where it applies) On-Premises retrieves and uploads.
//!
//! The servers are this file's own (a listener thread, a thread per connection playing a
//! script), bounded: a connection's script ends when the client goes away, and every server
//! stops when its test drops it (and in any case after [`SERVER_LIMIT`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nx_conformance::{Driver, OnPremDriver, PNG_1X1, Source, files_in};
use nx_protocol::call::framing::{self, Excess};
use nx_protocol::call::{Limit, Phase};
use nx_protocol::config::{ClientConfig, OnPremConfig, OnPremLogin, TransportConfig};
use nx_protocol::error::Error;
use nx_protocol::onprem::Token;
use nx_protocol::operation::BaseUrl;
use nx_protocol::policy::retry::RetryPolicy;
use nx_protocol::wa::{DownloadUrl, MediaInfo};
use nx_protocol::{Credentials, ResponseError};

/// The longest any server here runs.
const SERVER_LIMIT: Duration = Duration::from_secs(90);
/// What a call may overrun its deadline by (the promise is ~1 s; the machine is shared).
const MARGIN: Duration = Duration::from_millis(1500);

/// What a connection is answered with, after its request head was read.
type Script = fn(&mut TcpStream, &Control) -> io::Result<()>;

/// What a server's scripts share with its test: when to stop, and how much they wrote.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    /// Bytes the scripts' writes handed to the kernel, on every connection.
    written: AtomicU64,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn write(&self, stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
        stream.write_all(bytes)?;
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

struct Hostile {
    addr: SocketAddr,
    control: Arc<Control>,
    listener: Option<JoinHandle<()>>,
}

impl Hostile {
    fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local address");
        let control = Arc::new(Control::default());
        let shared = control.clone();
        let started = Instant::now();
        let listener = std::thread::spawn(move || {
            while !shared.stopped() && started.elapsed() < SERVER_LIMIT {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                            if read_head(&mut stream).is_ok() {
                                let _ = script(&mut stream, &shared);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            control,
            listener: Some(listener),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Bytes written so far, on every connection.
    fn written(&self) -> u64 {
        self.control.written.load(Ordering::Relaxed)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// Reads a request's head and its `Content-Length` body (at most 1 MiB in all).
fn read_head(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 64 * 1024 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    io::copy(&mut stream.take(len), &mut io::sink())?;
    Ok(())
}

/// Writes `bytes` one at a time, `every` apart, until the client goes or the test ends.
fn drip(stream: &mut TcpStream, ctl: &Control, bytes: &[u8], every: Duration) -> io::Result<()> {
    for b in bytes.iter().cycle() {
        if ctl.stopped() {
            return Ok(());
        }
        ctl.write(stream, &[*b])?;
        stream.flush()?;
        std::thread::sleep(every);
    }
    Ok(())
}

/// Writes `chunk` again and again as fast as the client reads, until it goes or the test ends.
fn flood(stream: &mut TcpStream, ctl: &Control, chunk: &[u8]) -> io::Result<()> {
    let block = chunk.repeat(4096 / chunk.len().max(1) + 1);
    while !ctl.stopped() {
        ctl.write(stream, &block)?;
    }
    Ok(())
}

fn drip_body(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n")?;
    drip(s, ctl, b"x", Duration::from_secs(2))
}

fn drip_headers(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    drip(
        s,
        ctl,
        b"HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(200),
    )
}

fn endless_1xx(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    while !ctl.stopped() {
        ctl.write(s, b"HTTP/1.1 102 Processing\r\n\r\n")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn endless_trailers(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
    )?;
    flood(
        s,
        ctl,
        b"X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
    )
}

fn tiny_chunks(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    flood(s, ctl, b"1\r\nx\r\n")
}

fn partial(s: &mut TcpStream, _: &Control) -> io::Result<()> {
    s.write_all(b"HTTP/1.1 206 Partial Content\r\nContent-Type: image/png\r\nContent-Range: bytes 0-99/1008\r\nContent-Length: 100\r\n\r\n")?;
    s.write_all(&[b'p'; 100])
}

fn no_content(s: &mut TcpStream, _: &Control) -> io::Result<()> {
    s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
}

fn slow_error(s: &mut TcpStream, ctl: &Control) -> io::Result<()> {
    s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000\r\n\r\n")?;
    drip(s, ctl, b"<", Duration::from_millis(200))
}

/// Short limits: 1 s per attempt, 3 s per call, 2 attempts.
fn short(transport: &mut TransportConfig) {
    transport.connect_timeout = Duration::from_secs(1);
    transport.request_timeout = Duration::from_secs(1);
    transport.overall_timeout = Duration::from_secs(3);
    transport.retry = RetryPolicy::new(2, Duration::from_millis(10), Duration::from_millis(20));
}

fn nxcloud<D: Driver>(server: &Hostile, edit: fn(&mut TransportConfig)) -> D {
    let mut config = ClientConfig::new(Credentials::new("k", "s"), "hostile");
    config.base_url = BaseUrl::parse(&server.url("")).unwrap();
    edit(&mut config.transport);
    D::new(config).expect("the client builds")
}

fn onprem<D: OnPremDriver>(server: &Hostile, edit: fn(&mut TransportConfig)) -> D {
    let login = OnPremLogin::Token(Token::from_parts("token", None));
    let mut config = OnPremConfig::new(BaseUrl::parse(&server.url("")).unwrap(), login, "hostile");
    edit(&mut config.transport);
    D::new(config).expect("the client builds")
}

fn media(server: &Hostile) -> MediaInfo {
    let url = DownloadUrl::parse(&server.url("/f.png?Expires=4000000000&Signature=s")).unwrap();
    MediaInfo::new("image/png", "f.png", url)
}

/// Runs `call`, returning its error and how long it took.
fn timed<T: std::fmt::Debug>(call: impl FnOnce() -> Result<T, Error>) -> (Error, Duration) {
    let started = Instant::now();
    let result = call();
    let took = started.elapsed();
    (
        result.expect_err("a hostile server's answer is an error"),
        took,
    )
}

fn assert_timeout(what: &str, error: &Error, took: Duration, bound: Duration, phases: &[Phase]) {
    assert!(
        took <= bound + MARGIN,
        "{what}: took {took:?}, the bound is {bound:?}: {error}"
    );
    match error {
        Error::Timeout { phase, .. } => {
            assert!(
                phases.contains(phase),
                "{what}: {phase:?} not in {phases:?}: {error}"
            )
        }
        other => panic!("{what}: not a timeout: {other:?}"),
    }
}

/// A body dripping a byte every 2 s fails by stalled-stream protection (20 s grace, 1 B/s, the
/// defaults), not at the 120 s deadline.
fn drip_body_stalls<D: Driver, O: OnPremDriver>() {
    let server = Hostile::start(drip_body);
    let client: D = nxcloud(&server, |_| {});
    let onprem: O = onprem(&server, |_| {});
    let grace = Duration::from_secs(20);
    let (error, took) = timed(|| client.download(&media(&server), None));
    check_stall("download", &error, took, grace);
    let (error, took) = timed(|| onprem.retrieve_media("m", None));
    check_stall("retrieve", &error, took, grace);
}

fn check_stall(what: &str, error: &Error, took: Duration, grace: Duration) {
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Body,
                limit: Limit::Stall,
                ..
            }
        ),
        "{what}: {error:?}"
    );
    // After the grace period (a tenth of it late at most, plus the drip's own 2 s).
    assert!(took >= grace - Duration::from_secs(1), "{what}: {took:?}");
    assert!(
        took <= grace + Duration::from_secs(4) + MARGIN,
        "{what}: {took:?}"
    );
}

/// Heads that trickle, and 1xx answers without end, are cut at the call's deadline.
fn heads_end_on_time<D: Driver, O: OnPremDriver>(script: Script) {
    let server = Hostile::start(script);
    let client: D = nxcloud(&server, short);
    let onprem: O = onprem(&server, short);
    let bound = Duration::from_secs(3);
    let heads = [Phase::Headers];
    let (error, took) = timed(|| client.download(&media(&server), None));
    assert_timeout("download", &error, took, bound, &heads);
    let (error, took) = timed(|| client.get_media("8615800001795", "m"));
    assert_timeout("getMedia", &error, took, bound, &heads);
    let (error, took) = timed(|| {
        client.upload_media(
            "8615800001795",
            "image/png",
            Source::Bytes(PNG_1X1.to_vec(), "a.png"),
        )
    });
    assert_timeout("uploadMedia", &error, took, bound, &heads);
    let (error, took) = timed(|| onprem.retrieve_media("m", None));
    assert_timeout("retrieve", &error, took, bound, &heads);
    let (error, took) =
        timed(|| onprem.upload_media("image/png", Source::Bytes(PNG_1X1.to_vec(), "a.png")));
    assert_timeout("On-Premises upload", &error, took, bound, &heads);
}

/// Bodies without end (1-byte chunks, trailer lines) end at the call's deadline, or as an
/// error of the HTTP stack (hyper caps trailers at 16 KiB), never as a file.
fn endless_bodies_end_on_time<D: Driver, O: OnPremDriver>(script: Script) {
    let server = Hostile::start(script);
    let client: D = nxcloud(&server, short);
    let onprem: O = onprem(&server, short);
    let bound = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.png");
    let (error, took) = timed(|| client.download(&media(&server), None));
    check_endless("download", &error, took, bound);
    let (error, took) = timed(|| onprem.retrieve_media_to_path("m", &target, None));
    check_endless("retrieve to a path", &error, took, bound);
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

fn check_endless(what: &str, error: &Error, took: Duration, bound: Duration) {
    assert!(took <= bound + MARGIN, "{what}: took {took:?}: {error}");
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Body | Phase::Trailers,
                ..
            } | Error::Transport { .. }
        ),
        "{what}: {error:?}"
    );
}

/// Limits a deadline would take long to reach: 10 s per attempt, 20 s per call, 2 attempts.
fn long(transport: &mut TransportConfig) {
    transport.connect_timeout = Duration::from_secs(5);
    transport.request_timeout = Duration::from_secs(10);
    transport.overall_timeout = Duration::from_secs(20);
    transport.retry = RetryPolicy::new(2, Duration::from_millis(10), Duration::from_millis(20));
}

/// Endless trailers end by their size, long before the call's deadline and after little was
/// read, with a typed error: hyper caps trailers at 16 KiB, nx-blocking counts what the
/// connection delivers past the body (`nx_protocol::call::framing`).
fn endless_trailers_end_by_size<D: Driver, O: OnPremDriver>() {
    let server = Hostile::start(endless_trailers);
    let client: D = nxcloud(&server, long);
    let onprem: O = onprem(&server, long);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.png");
    let (download, took_download) = timed(|| client.download(&media(&server), None));
    let (retrieve, took_retrieve) = timed(|| onprem.retrieve_media_to_path("m", &target, None));
    for (what, error, took) in [
        ("download", &download, took_download),
        ("retrieve to a path", &retrieve, took_retrieve),
    ] {
        // The deadline is 20 s; reading a few hundred KiB takes milliseconds.
        assert!(
            took < Duration::from_secs(5),
            "{}, {what}: took {took:?}: {error}",
            D::NAME
        );
        let Error::Transport { source } = error else {
            panic!("{}, {what}: not a transport error: {error:?}", D::NAME);
        };
        if D::NAME == "nx-blocking" {
            // The call machine keeps a transport's error redacted, the original inside.
            let excess = source
                .downcast_ref::<nx_protocol::error::RedactedError>()
                .and_then(|redacted| redacted.inner().downcast_ref::<Excess>())
                .unwrap_or_else(|| panic!("{what}: {source:?}"));
            assert_eq!(excess.body, 5, "{what}: {excess:?}");
            assert!(excess.delivered > framing::limit(5), "{what}: {excess:?}");
        }
    }
    // Two calls of two attempts each, every connection flooded as fast as it is read: what
    // the server wrote is what the client read plus what the kernel's socket buffers held
    // (a few MiB on loopback), not the gigabytes a deadline lets through.
    let written = server.written();
    println!(
        "{}: download {took_download:?}, retrieve {took_retrieve:?}; the server wrote {written} bytes",
        D::NAME
    );
    assert!(
        written < 64 << 20,
        "{}: the server wrote {written} bytes",
        D::NAME
    );
    assert!(files_in(dir.path()).is_empty());
}

/// 206 and 204 are not the file: typed errors, nothing at the target.
fn only_200_is_a_file<D: Driver, O: OnPremDriver>(script: Script, status: u16) {
    let server = Hostile::start(script);
    let client: D = nxcloud(&server, short);
    let onprem: O = onprem(&server, short);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.png");
    let malformed = |error: &Error| matches!(error, Error::Response(ResponseError::Malformed { status: s, .. }) if s.as_u16() == status);
    let (error, _) = timed(|| client.download(&media(&server), None));
    assert!(malformed(&error), "download: {error:?}");
    let (error, _) = timed(|| onprem.retrieve_media_to_path("m", &target, None));
    assert!(malformed(&error), "retrieve: {error:?}");
    assert!(!Path::new(&target).exists());
    assert!(files_in(dir.path()).is_empty());
}

/// An error answer whose body trickles is bounded by the attempt's limit.
fn slow_error_bodies_end_on_time<D: Driver>() {
    let server = Hostile::start(slow_error);
    let client: D = nxcloud(&server, short);
    let (error, took) = timed(|| client.download(&media(&server), None));
    assert!(
        took <= Duration::from_secs(3) + MARGIN,
        "took {took:?}: {error}"
    );
    assert!(
        matches!(error, Error::Timeout { .. } | Error::Response(_)),
        "{error:?}"
    );
}

nx_conformance::conformance! {
    a_dripping_body_fails_within_the_stall_grace_period => drip_body_stalls::<D, O>();
    trickling_headers_end_at_the_deadline => heads_end_on_time::<D, O>(drip_headers);
    endless_1xx_answers_end_at_the_deadline => heads_end_on_time::<D, O>(endless_1xx);
    endless_trailers_end_at_the_deadline => endless_bodies_end_on_time::<D, O>(endless_trailers);
    endless_trailers_end_by_their_size => endless_trailers_end_by_size::<D, O>();
    endless_tiny_chunks_end_at_the_deadline => endless_bodies_end_on_time::<D, O>(tiny_chunks);
    a_206_is_not_the_file => only_200_is_a_file::<D, O>(partial, 206);
    a_204_is_not_the_file => only_200_is_a_file::<D, O>(no_content, 204);
    a_trickling_error_body_ends_at_the_attempt_limit => slow_error_bodies_end_on_time::<D>();
}
