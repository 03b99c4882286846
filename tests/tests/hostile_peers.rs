//! Hostile peers the other suites do not play, for both transports: answer heads and bodies
//! that are framed wrongly or too large, redirects, TLS peers with bad certificates or that go
//! silent or cut a body without `close_notify`, and proxies that refuse, babble or hang.
//!
//! Every peer here is this file's own, on 127.0.0.1:0 (raw TCP, TLS with rcgen certificates,
//! a `CONNECT` proxy played by hand beside the tests' real one). Every case asserts a typed
//! error (or the one right answer), the time the call took, nothing at the destination path,
//! and messages (`Display`, `Debug`, every source) free of raw control characters, of the URL's
//! signature and of proxy credentials.
//!
//! ```sh
//! cargo test -p nx-conformance --test hostile_peers
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nx_conformance::proxy::ConnectProxy;
use nx_conformance::{Driver, OnPremDriver, files_in};
use nx_protocol::call::{Limit, Phase, StallProtection};
use nx_protocol::config::{ClientConfig, OnPremConfig, OnPremLogin, TransportConfig};
use nx_protocol::download::{IntegrityError, Sha256Digest};
use nx_protocol::error::Error;
use nx_protocol::onprem::Token;
use nx_protocol::operation::BaseUrl;
use nx_protocol::policy::retry::RetryPolicy;
use nx_protocol::proxy::{NoProxy, ProxyConfig, ProxyRules, ProxyUrl};
use nx_protocol::{Credentials, ResponseError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The longest any peer here runs.
const PEER_LIMIT: Duration = Duration::from_secs(90);
/// What a call may overrun its bound by (the machine is shared; the promise is ~1 s).
const MARGIN: Duration = Duration::from_millis(1500);
/// The bound of every call with [`short`] limits: its `overall_timeout`.
const BOUND: Duration = Duration::from_secs(3);
/// The download URL's signature: it must never be shown.
const SIGNATURE: &str = "S3cr3tS1gnatur3";
/// The proxy password of the cases that use one: it must never be shown either.
const PROXY_PASSWORD: &str = "pr0xyPassw0rd";
/// The file the honest parts of the peers serve.
const FILE: &[u8] = b"\x89PNG\r\n\x1a\n the file's bytes, all of them, to the last one.";

/// The bytes a connection's peer reads and writes: plain TCP or TLS over it.
trait Wire: Read + Write + Send {}
impl<T: Read + Write + Send> Wire for T {}

/// One request a peer read: its head.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
}

impl Seen {
    /// Whether it asks for media: NXCloud's download URL or an On-Premises retrieve (a `GET`;
    /// NXCloud's API calls are `POST`s).
    fn is_download(&self) -> bool {
        self.head.starts_with("GET ")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What a peer's connections share with its test.
struct Control {
    addr: SocketAddr,
    /// `http` or `https`, as the peer speaks.
    scheme: &'static str,
    stop: AtomicBool,
    conns: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Bytes the scripts wrote, on every connection.
    written: AtomicU64,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn write(&self, wire: &mut dyn Wire, bytes: &[u8]) -> io::Result<()> {
        wire.write_all(bytes)?;
        wire.flush()?;
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `chunk` again and again as fast as the client reads, until it goes.
    fn flood(&self, wire: &mut dyn Wire, chunk: &[u8]) -> io::Result<()> {
        let block = chunk.repeat(16 * 1024 / chunk.len().max(1) + 1);
        while !self.stopped() {
            self.write(wire, &block)?;
        }
        Ok(())
    }

    /// Holds the connection until the client goes or the test ends.
    fn hold(&self, wire: &mut dyn Wire) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        while !self.stopped() {
            match wire.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A getMedia success whose URL is this peer's `/f.png`, signed.
    fn get_media_answer(&self) -> String {
        let body = format!(
            r#"{{"code":0,"message":"ok","data":{{"mime_type":"image/png","file_name":"f.png","url":"{}"}}}}"#,
            download_url(self.scheme, self.addr)
        );
        json_answer(&body)
    }
}

fn download_url(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://{addr}/f.png?Expires=4102444800&OSSAccessKeyId=k&Signature={SIGNATURE}")
}

fn json_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn file_answer() -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        FILE.len()
    )
    .into_bytes();
    answer.extend_from_slice(FILE);
    answer
}

/// Which errors a case accepts.
type Expect = fn(&Error) -> bool;

/// What a connection does with a request it read: `Ok(true)` to read another on it.
type Script = Arc<dyn Fn(&mut dyn Wire, &Seen, &Control) -> io::Result<bool> + Send + Sync>;

/// How a peer treats a new connection.
#[derive(Clone)]
enum Mode {
    /// Reads HTTP requests and answers them by the script.
    Http,
    /// TLS with this configuration, then as `Http`; when the script is done, the connection
    /// ends with TLS `close_notify` (`true`) or is cut without it.
    Tls(Arc<rustls::ServerConfig>, bool),
    /// Accepts and never says a word (nor reads a TLS hello).
    Silent,
    /// Reads the ClientHello, sends the first half of its ServerHello with this configuration,
    /// and says no more.
    HalfHello(Arc<rustls::ServerConfig>),
}

struct Peer {
    control: Arc<Control>,
    listener: Option<JoinHandle<()>>,
}

impl Peer {
    fn start(mode: Mode, script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let control = Arc::new(Control {
            addr: listener.local_addr().expect("local address"),
            scheme: if matches!(mode, Mode::Tls(..)) {
                "https"
            } else {
                "http"
            },
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
        });
        let shared = control.clone();
        let started = Instant::now();
        let listener = std::thread::spawn(move || {
            while !shared.stopped() && started.elapsed() < PEER_LIMIT {
                match listener.accept() {
                    Ok((stream, _)) => {
                        shared.conns.fetch_add(1, Ordering::Relaxed);
                        let (shared, mode, script) = (shared.clone(), mode.clone(), script.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &mode, &script, &shared);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            control,
            listener: Some(listener),
        }
    }

    fn http(script: Script) -> Self {
        Self::start(Mode::Http, script)
    }

    fn addr(&self) -> SocketAddr {
        self.control.addr
    }

    fn base(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr())
    }

    fn seen(&self) -> Vec<Seen> {
        self.control.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.control.conns.load(Ordering::Relaxed)
    }

    fn written(&self) -> u64 {
        self.control.written.load(Ordering::Relaxed)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

fn serve(stream: TcpStream, mode: &Mode, script: &Script, ctl: &Control) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    match mode {
        Mode::Silent => {
            stream.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut stream = stream;
            ctl.hold(&mut stream)
        }
        Mode::Http => requests(&mut { stream }, script, ctl),
        Mode::HalfHello(config) => {
            let mut stream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut tls =
                rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            while !tls.wants_write() {
                if tls.read_tls(&mut stream)? == 0 {
                    return Ok(());
                }
                tls.process_new_packets().map_err(io::Error::other)?;
            }
            let mut flight = Vec::new();
            tls.write_tls(&mut flight)?;
            // The ServerHello's record (its 5-byte header, then the message), cut in half.
            let record = 5 + usize::from(u16::from_be_bytes([flight[3], flight[4]]));
            ctl.write(&mut stream, &flight[..record / 2])?;
            stream.set_read_timeout(Some(Duration::from_millis(50)))?;
            ctl.hold(&mut stream)
        }
        Mode::Tls(config, notify) => {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let tls = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(tls, stream);
            requests(&mut tls, script, ctl)?;
            if *notify {
                tls.conn.send_close_notify();
                tls.flush()?;
            }
            // Else dropped without `close_notify`: the TCP connection ends with no TLS
            // close, as a peer (or an attacker) cutting the connection does.
            Ok(())
        }
    }
}

fn requests(wire: &mut dyn Wire, script: &Script, ctl: &Control) -> io::Result<()> {
    loop {
        let Some(head) = read_request(wire)? else {
            return Ok(());
        };
        let seen = Seen { head };
        ctl.seen.lock().unwrap().push(seen.clone());
        if !script(wire, &seen, ctl)? {
            return Ok(());
        }
    }
}

/// Reads a request's head and its `Content-Length` body (at most 1 MiB); `None` at the end.
fn read_request(wire: &mut dyn Wire) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if wire.read(&mut byte)? == 0 || head.len() > 64 * 1024 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let seen = Seen { head };
    let len = seen
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    io::copy(&mut wire.take(len), &mut io::sink())?;
    Ok(Some(seen.head))
}

/// A script: getMedia answers name this peer's `/f.png`; `download` answers that.
fn downloads(
    download: impl Fn(&mut dyn Wire, &Control) -> io::Result<()> + Send + Sync + 'static,
) -> Script {
    Arc::new(move |wire, seen, ctl| {
        if seen.is_download() {
            download(wire, ctl)?;
            Ok(false)
        } else {
            ctl.write(wire, ctl.get_media_answer().as_bytes())?;
            Ok(true)
        }
    })
}

/// A script answering every request with `answer`, then closing.
fn always(answer: impl AsRef<[u8]> + Send + Sync + 'static) -> Script {
    Arc::new(move |wire, _, ctl| {
        ctl.write(wire, answer.as_ref())?;
        Ok(false)
    })
}

/// Short limits: 1 s to connect, 1 s per attempt, 3 s per call, 2 attempts, 1 MiB at most.
fn short(transport: &mut TransportConfig) {
    transport.connect_timeout = Duration::from_secs(1);
    transport.request_timeout = Duration::from_secs(1);
    transport.overall_timeout = BOUND;
    transport.retry = RetryPolicy::new(2, Duration::from_millis(10), Duration::from_millis(20));
    transport.max_answer_bytes = 1 << 20;
    transport.max_download_bytes = 1 << 20;
    transport.proxy = ProxyConfig::Off;
}

fn nxcloud<D: Driver>(base: &str, edit: impl FnOnce(&mut TransportConfig)) -> D {
    let mut config = ClientConfig::new(Credentials::new("k", "s"), "hostile-peers");
    config.base_url = BaseUrl::parse(base).unwrap();
    short(&mut config.transport);
    edit(&mut config.transport);
    D::new(config).expect("the client builds")
}

fn onprem<O: OnPremDriver>(base: &str) -> O {
    let login = OnPremLogin::Token(Token::from_parts("token", None));
    let mut config = OnPremConfig::new(BaseUrl::parse(base).unwrap(), login, "hostile-peers");
    short(&mut config.transport);
    O::new(config).expect("the client builds")
}

/// Every text an error shows: `Display`, `Debug`, and those of each source.
fn shown(error: &Error) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

/// What every error must not show: raw control characters (in `Display`: `Debug` escapes),
/// the download URL's signature, a proxy's password.
fn assert_clean(what: &str, error: &Error) {
    let mut display = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        display.push(cause.to_string());
        source = cause.source();
    }
    for text in &display {
        assert!(
            !text.chars().any(char::is_control),
            "{what}: a raw control character in {text:?}"
        );
    }
    let all = shown(error);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{PROXY_PASSWORD}"));
    for secret in [SIGNATURE, PROXY_PASSWORD, &basic] {
        assert!(!all.contains(secret), "{what}: {secret} shown in {all}");
    }
}

/// Runs `call`, returning its error and how long it took (a success is a failure here).
fn timed<T: std::fmt::Debug>(
    what: &str,
    call: impl FnOnce() -> Result<T, Error>,
) -> (Error, Duration) {
    let started = Instant::now();
    let result = call();
    let took = started.elapsed();
    match result {
        Err(error) => {
            // What each probe ended with, for `--nocapture` readers.
            println!("{what}: {took:.1?}: {error:?}");
            assert_clean(what, &error);
            (error, took)
        }
        Ok(value) => panic!("{what}: a hostile peer's answer was taken: {value:?}"),
    }
}

fn within(what: &str, took: Duration, bound: Duration, error: &Error) {
    assert!(
        took <= bound + MARGIN,
        "{what}: took {took:?}, the bound is {bound:?}: {error}"
    );
}

fn is_transport(error: &Error) -> bool {
    matches!(error, Error::Transport { .. })
}

fn is_malformed(error: &Error) -> bool {
    matches!(error, Error::Response(ResponseError::Malformed { .. }))
}

/// A download to a path through getMedia (NXCloud) and a retrieve to a path (On-Premises),
/// both from `peer`: each ends within the bound with an error `expect` accepts, and leaves
/// nothing in the target's directory.
fn refused_downloads<D: Driver, O: OnPremDriver>(
    what: &str,
    peer: &Peer,
    scheme: &str,
    expect: Expect,
) {
    let base = peer.base(scheme);
    let client: D = nxcloud(&base, |_| {});
    let onprem: O = onprem(&base);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.png");
    let (error, took) = timed(what, || {
        client.download_media_to_path("8615800001795", "m", &target, None)
    });
    within(what, took, BOUND, &error);
    assert!(expect(&error), "{}, {what}: {error:?}", D::NAME);
    assert!(
        files_in(dir.path()).is_empty(),
        "{what}: {:?}",
        files_in(dir.path())
    );
    let (error, took) = timed(what, || onprem.retrieve_media_to_path("m", &target, None));
    within(what, took, BOUND, &error);
    assert!(expect(&error), "{}, {what} (retrieve): {error:?}", O::NAME);
    assert!(
        files_in(dir.path()).is_empty(),
        "{what}: {:?}",
        files_in(dir.path())
    );
}

/// An API call (getMedia) answered by `peer`: an error `expect` accepts, within the bound.
fn refused_api<D: Driver>(what: &str, peer: &Peer, expect: Expect) -> Error {
    let client: D = nxcloud(&peer.base("http"), |_| {});
    let (error, took) = timed(what, || client.get_media("8615800001795", "m"));
    within(what, took, BOUND, &error);
    assert!(expect(&error), "{}, {what}: {error:?}", D::NAME);
    error
}

// ---- answer heads ----

fn garbage_status_line<D: Driver, O: OnPremDriver>() {
    let answer = "HTLP/9.9 banana split\r\nContent-Length: 2\r\n\r\nok";
    refused_api::<D>(
        "garbage status line",
        &Peer::http(always(answer)),
        is_transport,
    );
    let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, answer.as_bytes())));
    refused_downloads::<D, O>("garbage status line", &peer, "http", is_transport);
}

/// 10 000 header lines, or one of 1 MiB: refused by the HTTP stack's head limits, at once.
fn header_floods<D: Driver, O: OnPremDriver>() {
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Content-Length: 2\r\n\r\nok");
    let long = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(1 << 20)
    );
    for (what, answer) in [("10 000 headers", many), ("a 1 MiB header line", long)] {
        let peer = Peer::http(always(answer.clone()));
        refused_api::<D>(what, &peer, is_transport);
        let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, answer.as_bytes())));
        refused_downloads::<D, O>(what, &peer, "http", is_transport);
    }
}

/// Framing a client must not guess at: two `Content-Length`s that differ, `Content-Length`
/// beside `Transfer-Encoding`, and a transfer coding other than `chunked` (which we do not
/// decode: its bytes are not the file). Refused, never read one way or the other.
fn ambiguous_framing<D: Driver, O: OnPremDriver>() {
    fn chunked(body: &[u8]) -> Vec<u8> {
        let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
        chunked.extend_from_slice(body);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        chunked
    }
    type Frame = fn(&[u8]) -> Vec<u8>;
    // The HTTP stacks refuse differing lengths themselves; the rest is `head::framing`'s.
    let cases: [(&str, Frame); 5] = [
        ("two Content-Lengths", |body| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            [head.as_bytes(), body].concat()
        }),
        ("a Content-Length list", |body| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 5, {}\r\n\r\n",
                body.len()
            );
            [head.as_bytes(), body].concat()
        }),
        ("Content-Length with Transfer-Encoding", |body| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                body.len()
            );
            [head.as_bytes(), &chunked(body)].concat()
        }),
        ("Transfer-Encoding: gzip, chunked", |body| {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
            [head.as_bytes(), &chunked(body)].concat()
        }),
        ("Transfer-Encoding: chunked twice", |body| {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
            [head.as_bytes(), &chunked(body)].concat()
        }),
    ];
    for (i, (what, frame)) in cases.into_iter().enumerate() {
        let expect: Expect = if i < 2 {
            |e| is_transport(e) || is_malformed(e)
        } else {
            |e| is_malformed(e) && e.to_string().contains("Transfer-Encoding")
        };
        // A getMedia success, so that only the framing can make it an error.
        let answer = r#"{"code":0,"message":"ok","data":{"mime_type":"image/png","file_name":"f.png","url":"http://127.0.0.1:9/f.png?Expires=4102444800&Signature=x"}}"#;
        let api = Peer::http(always(frame(answer.as_bytes())));
        refused_api::<D>(what, &api, expect);
        let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, &frame(FILE))));
        refused_downloads::<D, O>(what, &peer, "http", expect);
    }
}

/// A `Content-Length` that is not a plain number (`-1`, `+N`, `Nx`, hex, empty): refused,
/// never read to the close as if it were absent. And status codes no API sends (`999`, `000`,
/// `2000`): an error, never the file.
fn odd_lengths_and_statuses<D: Driver, O: OnPremDriver>() {
    let len = FILE.len();
    let lengths = [
        "-1".to_owned(),
        format!("+{len}"),
        format!("{len}x"),
        format!("0x{len:x}"),
        String::new(),
    ];
    for value in lengths {
        let what = format!("Content-Length: {value:?}");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {value}\r\n\r\n"
        );
        let answer = [head.as_bytes(), FILE].concat();
        let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, &answer)));
        refused_downloads::<D, O>(&what, &peer, "http", |e| is_transport(e) || is_malformed(e));
    }
    for status in ["999 Weird", "000 Zero", "2000 OK", "20 OK"] {
        let what = format!("status {status}");
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: image/png\r\nContent-Length: {len}\r\n\r\n"
        );
        let answer = [head.as_bytes(), FILE].concat();
        let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, &answer)));
        refused_downloads::<D, O>(&what, &peer, "http", |e| {
            is_transport(e) || matches!(e, Error::Response(_))
        });
    }
}

/// An HTTP/1.0 answer without a length is read to the connection's close: legal, and the file.
fn http10_without_length<D: Driver>() {
    let mut answer = b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n".to_vec();
    answer.extend_from_slice(FILE);
    let peer = Peer::http(downloads(move |w, ctl| ctl.write(w, &answer)));
    let client: D = nxcloud(&peer.base("http"), |_| {});
    let (bytes, verified) = client
        .download_media("8615800001795", "m", Some(Sha256Digest::of(FILE)))
        .expect("a close-delimited answer is the file");
    assert_eq!(bytes, FILE);
    assert_eq!(verified.len, FILE.len() as u64);
}

// ---- answer bodies ----

/// Bytes past the `Content-Length` are not the file, and never the next answer: a client that
/// kept the connection would read them as the answer to its next request.
fn bytes_past_the_length<D: Driver>() {
    let smuggled = json_answer(
        r#"{"code":0,"message":"ok","data":{"mime_type":"image/png","file_name":"evil.png","url":"http://127.0.0.1:9/evil.png?Expires=4102444800&Signature=x"}}"#,
    );
    let peer = Peer::http(Arc::new(move |wire, seen, ctl| {
        if seen.is_download() {
            let mut answer = file_answer();
            answer.extend_from_slice(smuggled.as_bytes());
            ctl.write(wire, &answer)?;
        } else {
            let mut answer = ctl.get_media_answer().into_bytes();
            answer.extend_from_slice(smuggled.as_bytes());
            ctl.write(wire, &answer)?;
        }
        Ok(true)
    }));
    let client: D = nxcloud(&peer.base("http"), |_| {});
    for round in 0..3 {
        let info = client.get_media("8615800001795", "m").expect("getMedia");
        assert_eq!(
            info.file_name(),
            "f.png",
            "round {round}: the smuggled answer was read"
        );
        let (bytes, _) = client.download(&info, None).expect("the download");
        assert_eq!(bytes, FILE, "round {round}");
    }
}

/// A chunk size of 2^64-1 (then bytes without end), one past it, and an endless chunk
/// extension: bounded by the download cap or the HTTP stack, and by the server's bytes.
fn monstrous_chunks<D: Driver, O: OnPremDriver>() {
    const HEAD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n";
    let huge = Peer::http(downloads(|w, ctl| {
        ctl.write(w, format!("{HEAD}ffffffffffffffff\r\n").as_bytes())?;
        ctl.flood(w, b"x")
    }));
    refused_downloads::<D, O>("a chunk of 2^64-1 bytes", &huge, "http", |e| {
        matches!(e, Error::Integrity(IntegrityError::TooLarge { .. })) || is_transport(e)
    });
    let overflow = Peer::http(downloads(|w, ctl| {
        ctl.write(w, format!("{HEAD}10000000000000000\r\nxxxx").as_bytes())
    }));
    refused_downloads::<D, O>("a chunk size past 2^64", &overflow, "http", is_transport);
    let extension = Peer::http(downloads(|w, ctl| {
        ctl.write(w, format!("{HEAD}1;ext=").as_bytes())?;
        ctl.flood(w, b"a")
    }));
    refused_downloads::<D, O>("an endless chunk extension", &extension, "http", |e| {
        is_transport(e) || matches!(e, Error::Timeout { .. })
    });
    for peer in [&huge, &extension] {
        assert!(
            peer.written() < 64 << 20,
            "the peer wrote {} bytes",
            peer.written()
        );
    }
}

/// A download answered with `Content-Encoding: gzip` is saved as it came: the object's bytes,
/// never decoded (no transport asks for an encoding), and its SHA-256 is of those bytes.
fn gzip_download<D: Driver>() {
    // `printf 'hello\n' | gzip -n`
    const GZIP: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\xe7\x02\x00\x200:6\x06\x00\x00\x00";
    let peer = Peer::http(downloads(|w, ctl| {
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            GZIP.len()
        )
        .into_bytes();
        answer.extend_from_slice(GZIP);
        ctl.write(w, &answer)
    }));
    let client: D = nxcloud(&peer.base("http"), |_| {});
    let (bytes, verified) = client
        .download_media("8615800001795", "m", Some(Sha256Digest::of(GZIP)))
        .expect("the stored bytes");
    assert_eq!(bytes, GZIP);
    assert_eq!(verified.sha256, Some(Sha256Digest::of(GZIP)));
    for seen in peer.seen() {
        assert!(
            seen.header("accept-encoding")
                .is_none_or(|v| v == "identity"),
            "{}: {}",
            D::NAME,
            seen.head
        );
    }
}

/// 100 MiB of JSON announced by its `Content-Length`: refused by size, without reading it.
fn announced_oversize_json<D: Driver>() {
    let peer = Peer::http(Arc::new(|wire, _, ctl| {
        ctl.write(wire, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n[")?;
        ctl.flood(wire, b"[1,2,3],")?;
        Ok(false)
    }));
    let error = refused_api::<D>("100 MiB of JSON", &peer, |e| {
        matches!(e, Error::AnswerTooLarge { .. })
    });
    assert!(
        peer.written() < 64 << 20,
        "{error}: the peer wrote {} bytes",
        peer.written()
    );
}

/// JSON nested 500 000 deep (a recursive parser's stack), and invalid UTF-8 in a string:
/// `Malformed`, no stack overflow, no panic; for NXCloud and On-Premises answers.
fn hostile_json<D: Driver, O: OnPremDriver>() {
    // Balanced, so that a parser finds nothing wrong but the depth.
    let deep_array = format!(
        r#"{{"code":0,"message":"ok","data":{}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let deep_object = format!(
        r#"{{"code":0,"message":"ok","data":{}1{}}}"#,
        r#"{"a":"#.repeat(100_000),
        "}".repeat(100_000)
    );
    let mut bad_utf8 =
        br#"{"code":0,"message":"ok","data":{"mime_type":"image/png","file_name":"f"#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    bad_utf8.extend_from_slice(br#".png","url":"http://127.0.0.1:9/f.png?Signature=x"}}"#);
    for (what, body) in [
        ("deeply nested arrays", deep_array.into_bytes()),
        ("deeply nested objects", deep_object.into_bytes()),
        ("invalid UTF-8 in a string", bad_utf8),
    ] {
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        let peer = Peer::http(always(answer.clone()));
        refused_api::<D>(what, &peer, is_malformed);
        // On-Premises: the same body as an upload's answer and as an error (400).
        let on_prem: O = onprem(&peer.base("http"));
        let (error, took) = timed(what, || {
            on_prem.upload_media(
                "image/png",
                nx_conformance::Source::Bytes(FILE.to_vec(), "f.png"),
            )
        });
        within(what, took, BOUND, &error);
        assert!(is_malformed(&error), "{}, {what}: {error:?}", O::NAME);
        let mut error_answer = answer.clone();
        error_answer[9..12].copy_from_slice(b"400");
        let peer = Peer::http(always(error_answer));
        let on_prem: O = onprem(&peer.base("http"));
        let (error, _) = timed(what, || on_prem.delete_media("m"));
        assert!(
            matches!(error, Error::Response(_)),
            "{}, {what} (400): {error:?}",
            O::NAME
        );
    }
}

/// A server's own words with control characters (ESC sequences, CR/LF posing as a new log
/// line, NUL, BEL, C1): kept, but escaped, in every message.
fn escaped_server_text<D: Driver, O: OnPremDriver>() {
    let nasty = r#"bad \u001b[2J\u001b]0;owned\u0007\r\nERROR forged line\u0000\u009b"#;
    let body = format!(r#"{{"code":1003,"message":"{nasty}","data":null}}"#);
    let peer = Peer::http(always(json_answer(&body)));
    let error = refused_api::<D>("an NXCloud message", &peer, |e| {
        matches!(e, Error::Response(ResponseError::Api { .. }))
    });
    for shown in ["\\u{1b}[2J", "\\r\\nERROR forged line", "\\u{0}\\u{9b}"] {
        assert!(error.to_string().contains(shown), "{shown} not in {error}");
    }
    let meta = format!(r#"{{"errors":[{{"code":1006,"title":"{nasty}","details":"{nasty}"}}]}}"#);
    let answer = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{meta}",
        meta.len()
    );
    let peer = Peer::http(always(answer));
    let on_prem: O = onprem(&peer.base("http"));
    let (error, _) = timed("a Meta error", || on_prem.delete_media("m"));
    assert!(
        matches!(error, Error::Response(ResponseError::OnPrem { .. })),
        "{error:?}"
    );
    for shown in ["\\u{1b}]0;owned\\u{7}", "\\r\\nERROR forged line"] {
        assert!(error.to_string().contains(shown), "{shown} not in {error}");
    }
}

// ---- redirects ----

/// 301, 302, 303, 307 and 308, from the API and from the download URL, to another live server
/// on 127.0.0.1 (http and https): never followed (that server sees no request), an `Http`
/// error naming the status, and the `Location`'s query never shown.
fn redirects<D: Driver, O: OnPremDriver>() {
    let elsewhere = Peer::http(downloads(|w, ctl| ctl.write(w, &file_answer())));
    for status in [301u16, 302, 303, 307, 308] {
        for scheme in ["http", "https"] {
            let location = format!(
                "{scheme}://{}/f.png?Expires=4102444800&Signature={SIGNATURE}",
                elsewhere.addr()
            );
            let answer = format!(
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            let redirected = |e: &Error| matches!(e, Error::Response(ResponseError::Http { status, .. }) if status.is_redirection());
            let api = Peer::http(always(answer.clone()));
            refused_api::<D>(&format!("{status} from the API"), &api, redirected);
            let download = Peer::http(downloads(move |w, ctl| ctl.write(w, answer.as_bytes())));
            refused_downloads::<D, O>(
                &format!("{status} from the download"),
                &download,
                "http",
                redirected,
            );
        }
    }
    assert!(
        elsewhere.seen().is_empty(),
        "followed: {:?}",
        elsewhere.seen()
    );
}

// ---- TLS ----

/// A throwaway CA, and server configurations signed by it (or not).
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "hostile-peers CA");
        Self {
            ca: CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn roots(&self) -> Vec<Vec<u8>> {
        vec![self.ca.der().to_vec()]
    }

    /// A leaf for `names` valid from `years` (relative to 2026: -30..-20 is long expired),
    /// signed by the CA, or self-signed.
    fn server(&self, names: Vec<SanType>, years: (i32, i32), self_signed: bool) -> Mode {
        self.server_for(
            names,
            years,
            self_signed,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// As [`Pki::server`], for the extended key usage `usage`.
    fn server_for(
        &self,
        names: Vec<SanType>,
        years: (i32, i32),
        self_signed: bool,
        usage: ExtendedKeyUsagePurpose,
    ) -> Mode {
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names = names;
        leaf.distinguished_name.push(DnType::CommonName, "peer");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![usage];
        leaf.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = if self_signed {
            leaf.self_signed(&key).unwrap()
        } else {
            leaf.signed_by(&key, &self.ca).unwrap()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Mode::Tls(Arc::new(config), false)
    }

    /// A right certificate; connections cut without `close_notify`.
    fn good(&self) -> Mode {
        self.server(vec![loopback()], (2020, 2090), false)
    }

    /// A right certificate, but only half of the ServerHello is ever sent.
    fn half_hello(&self) -> Mode {
        match self.good() {
            Mode::Tls(config, _) => Mode::HalfHello(config),
            other => other,
        }
    }

    /// A right certificate; connections closed with `close_notify`.
    fn good_closing(&self) -> Mode {
        match self.good() {
            Mode::Tls(config, _) => Mode::Tls(config, true),
            other => other,
        }
    }
}

fn loopback() -> SanType {
    SanType::IpAddress("127.0.0.1".parse().unwrap())
}

fn https<D: Driver>(peer: &Peer, pki: &Pki) -> D {
    let roots = pki.roots();
    nxcloud(&peer.base("https"), move |t| t.extra_roots_der = roots)
}

/// Certificates that must not be trusted: another name, expired, not yet valid, self-signed,
/// one for clients only (extended key usage).
/// A `Tls` error at once, and the peer never reads a request.
fn bad_certificates<D: Driver>() {
    let pki = Pki::new();
    let cases = [
        (
            "another name",
            pki.server(
                vec![
                    SanType::IpAddress("127.0.0.2".parse().unwrap()),
                    SanType::DnsName("peer.invalid".try_into().unwrap()),
                ],
                (2020, 2090),
                false,
            ),
        ),
        ("expired", pki.server(vec![loopback()], (1996, 2006), false)),
        (
            "not yet valid",
            pki.server(vec![loopback()], (2090, 2095), false),
        ),
        (
            "self-signed",
            pki.server(vec![loopback()], (2020, 2090), true),
        ),
        (
            "a client certificate",
            pki.server_for(
                vec![loopback()],
                (2020, 2090),
                false,
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ),
    ];
    for (what, mode) in cases {
        let peer = Peer::start(mode, always(json_answer("{}")));
        let client: D = https(&peer, &pki);
        let (error, took) = timed(what, || client.get_media("8615800001795", "m"));
        within(what, took, BOUND, &error);
        assert!(
            matches!(error, Error::Tls { .. }),
            "{}, {what}: {error:?}",
            D::NAME
        );
        assert!(peer.seen().is_empty(), "{what}: {:?}", peer.seen());
    }
    // The same CA with a right certificate works: the cases fail for their certificate only.
    let peer = Peer::start(pki.good(), downloads(|w, ctl| ctl.write(w, &file_answer())));
    let client: D = https(&peer, &pki);
    assert_eq!(
        client
            .get_media("8615800001795", "m")
            .expect("a good certificate")
            .file_name(),
        "f.png"
    );
}

/// A peer that accepts TCP and never answers the ClientHello: a `Timeout` within the bound.
fn silent_tls_peer_times_out<D: Driver>() {
    let pki = Pki::new();
    let peer = Peer::start(Mode::Silent, always(""));
    let client: D = https(&peer, &pki);
    let (error, took) = timed("a silent TLS peer", || {
        client.get_media("8615800001795", "m")
    });
    within("a silent TLS peer", took, BOUND, &error);
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Connect,
                limit: Limit::Connect,
                ..
            }
        ),
        "{}: {error:?}",
        D::NAME
    );
    assert_waited_on(&error, &peer, None);
}

/// A timeout's `host` is `peer` (host and port, as the client was given it), its `proxy`
/// the proxy of `proxy_url` (host and port, without the credentials), and its message names
/// both.
fn assert_waited_on(error: &Error, peer: &Peer, proxy_url: Option<&str>) {
    let want_host = peer.addr().to_string();
    let want_proxy = proxy_url.map(|url| ProxyUrl::parse(url).expect("a proxy URL").authority());
    let Error::Timeout { host, proxy, .. } = error else {
        panic!("not a timeout: {error:?}");
    };
    assert_eq!(host.as_deref(), Some(want_host.as_str()), "{error}");
    assert_eq!(proxy, &want_proxy, "{error}");
    let shown = error.to_string();
    assert!(shown.contains(&want_host), "{shown}");
    if let Some(proxy) = &want_proxy {
        assert!(
            shown.contains(&format!("through proxy {proxy}:")),
            "{shown}"
        );
    }
}

/// The connect limit of [`connect_limited`] clients.
const CONNECT_LIMIT: Duration = Duration::from_secs(1);
/// How long past [`CONNECT_LIMIT`] a connect that hangs may take to end (the machine is shared).
const CONNECT_MARGIN: Duration = Duration::from_secs(4);

/// 1 s to connect, 20 s for the attempt and its answer, one attempt: a connect that hangs must
/// end at the first limit, not the second.
fn connect_limited(transport: &mut TransportConfig) {
    transport.connect_timeout = CONNECT_LIMIT;
    transport.request_timeout = Duration::from_secs(20);
    transport.overall_timeout = Duration::from_secs(60);
    transport.retry = RetryPolicy::none();
}

/// A client of `peer` over https trusting `pki`, through `proxy` if any, with
/// [`connect_limited`] limits.
fn connect_limited_client<D: Driver>(pki: &Pki, peer: &Peer, proxy: Option<String>) -> D {
    let roots = pki.roots();
    nxcloud(&peer.base("https"), |t| {
        connect_limited(t);
        t.extra_roots_der = roots;
        if let Some(proxy) = &proxy {
            through(proxy)(t);
        }
    })
}

/// Everything before the request's first byte is the connect phase, bounded by
/// `connect_timeout` (1 s) whatever the attempt's limit (20 s): a TLS peer that never answers
/// the ClientHello, and one that sends half its ServerHello and stalls. Each is a connect-phase
/// timeout after the connect limit, not the answer's limit.
fn hung_handshakes<D: Driver>() {
    let pki = Pki::new();
    let silent = Peer::start(Mode::Silent, always(""));
    let half_hello = Peer::start(pki.half_hello(), always(""));
    for (what, peer) in [
        ("a TLS peer that never answers", &silent),
        ("half a ServerHello", &half_hello),
    ] {
        connect_times_out::<D>(what, &pki, peer, None);
    }
    assert!(half_hello.connections() >= 1);
}

/// As [`hung_handshakes`], through proxies: one that never answers `CONNECT`, one whose answer
/// head never ends (no blank line), one that drips its head a line at a time (every read gets
/// bytes), and a good tunnel to a TLS peer that never answers.
fn hung_proxies<D: Driver>() {
    let pki = Pki::new();
    let silent = Peer::start(Mode::Silent, always(""));
    let target = Peer::start(pki.good(), downloads(|w, ctl| ctl.write(w, &file_answer())));
    let unanswered = Peer::http(Arc::new(|wire, _, ctl| ctl.hold(wire).map(|()| false)));
    let half_answered = Peer::http(Arc::new(|wire, _, ctl| {
        ctl.write(wire, b"HTTP/1.1 200 Connection established\r\n")?;
        ctl.hold(wire).map(|()| false)
    }));
    // A header line every 300 ms: each read gets bytes, the head never ends.
    let dripping = Peer::http(Arc::new(|wire, _, ctl| {
        ctl.write(wire, b"HTTP/1.1 200 Connection established\r\n")?;
        while !ctl.stopped() {
            std::thread::sleep(Duration::from_millis(300));
            ctl.write(wire, b"X-Drip: a\r\n")?;
        }
        Ok(false)
    }));
    let tunnel = ConnectProxy::start();
    let hand_played = |proxy: &Peer| format!("http://user:{PROXY_PASSWORD}@{}", proxy.addr());
    let cases = [
        (
            "a proxy that never answers CONNECT",
            &target,
            hand_played(&unanswered),
        ),
        (
            "a CONNECT answer without its blank line",
            &target,
            hand_played(&half_answered),
        ),
        (
            "a CONNECT answer that drips header lines",
            &target,
            hand_played(&dripping),
        ),
        (
            "a tunnel to a TLS peer that never answers",
            &silent,
            tunnel.url(),
        ),
    ];
    for (what, peer, proxy) in cases {
        connect_times_out::<D>(what, &pki, peer, Some(proxy));
    }
    assert!(!unanswered.seen().is_empty() && !half_answered.seen().is_empty());
    assert!(target.seen().is_empty(), "the target was reached");
    assert_eq!(tunnel.tunnels(), 1, "{:?}", tunnel.connects());
}

/// A getMedia to `peer` (through `proxy`) with [`connect_limited`] limits: a connect-phase
/// timeout after the connect limit, well before the attempt's.
fn connect_times_out<D: Driver>(what: &str, pki: &Pki, peer: &Peer, proxy: Option<String>) {
    let client: D = connect_limited_client(pki, peer, proxy.clone());
    let (error, took) = timed(what, || client.get_media("8615800001795", "m"));
    assert!(
        took >= CONNECT_LIMIT.mul_f32(0.9) && took <= CONNECT_LIMIT + CONNECT_MARGIN,
        "{}, {what}: took {took:?}: {error}",
        D::NAME
    );
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Connect,
                limit: Limit::Connect,
                after: CONNECT_LIMIT,
                ..
            }
        ),
        "{}, {what}: {error:?}",
        D::NAME
    );
    assert_waited_on(&error, peer, proxy.as_deref());
}

/// The connect limit (5 s) capped by a nearer one (1 s): the attempt's limit, for a TLS peer
/// that never answers, and the call's deadline, for a proxy that never answers `CONNECT`. Both
/// end at that limit, in the connect phase (no connection was made, whichever of the timers
/// that fire together is seen first), naming the limit that passed and who was waited on.
fn capped_connects<D: Driver>() {
    const NEAR: Duration = Duration::from_secs(1);
    let pki = Pki::new();
    let silent = Peer::start(Mode::Silent, always(""));
    let target = Peer::start(pki.good(), downloads(|w, ctl| ctl.write(w, &file_answer())));
    let unanswered = Peer::http(Arc::new(|wire, _, ctl| ctl.hold(wire).map(|()| false)));
    let unanswered_url = format!("http://user:{PROXY_PASSWORD}@{}", unanswered.addr());
    let cases = [
        ("a silent TLS peer", &silent, None, Limit::Attempt),
        (
            "a CONNECT never answered",
            &target,
            Some(unanswered_url),
            Limit::Call,
        ),
    ];
    for (what, peer, proxy, limit) in cases {
        let roots = pki.roots();
        let client: D = nxcloud(&peer.base("https"), |t| {
            t.connect_timeout = NEAR * 5;
            (t.request_timeout, t.overall_timeout) = match limit {
                Limit::Attempt => (NEAR, Duration::from_secs(60)),
                _ => (Duration::from_secs(20), NEAR),
            };
            t.retry = RetryPolicy::none();
            t.extra_roots_der = roots;
            if let Some(proxy) = &proxy {
                through(proxy)(t);
            }
        });
        let (error, took) = timed(what, || client.get_media("8615800001795", "m"));
        assert!(
            took >= NEAR.mul_f32(0.9) && took <= Duration::from_secs(4),
            "{}, {what}: took {took:?}: {error}",
            D::NAME
        );
        assert!(
            matches!(
                &error,
                Error::Timeout { phase: Phase::Connect, limit: l, after: NEAR, .. } if *l == limit
            ),
            "{}, {what}: {error:?}",
            D::NAME
        );
        assert_waited_on(&error, peer, proxy.as_deref());
    }
    assert!(target.seen().is_empty(), "the target was reached");
}

/// A download URL on another host than the API's, whose body stalls: the timeout names the
/// download's host, not the API's (nor the URL's signature).
fn stalled_download_names_its_host<D: Driver>() {
    let storage = Peer::http(downloads(|wire, ctl| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            FILE.len()
        );
        ctl.write(wire, head.as_bytes())?;
        ctl.write(wire, &FILE[..4])?;
        ctl.hold(wire)
    }));
    let url = download_url("http", storage.addr());
    let api = Peer::http(always(json_answer(&format!(
        r#"{{"code":0,"message":"ok","data":{{"mime_type":"image/png","file_name":"f.png","url":"{url}"}}}}"#
    ))));
    let client: D = nxcloud(&api.base("http"), |t| {
        t.stalled_stream = Some(StallProtection::new(Duration::from_secs(1), 1));
    });
    let (error, took) = timed("a stalled download", || {
        client.download_media("8615800001795", "m", None)
    });
    within("a stalled download", took, BOUND, &error);
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Body,
                limit: Limit::Stall,
                ..
            }
        ),
        "{}: {error:?}",
        D::NAME
    );
    assert_waited_on(&error, &storage, None);
    assert!(
        !error.to_string().contains(&api.addr().to_string()),
        "{error}"
    );
    assert!(storage.seen().iter().any(Seen::is_download));
}

/// The contrast: once the handshake is done (directly and through the tunnel), the answer gets
/// the attempt's limit, not the connect limit. A server that takes twice the connect limit to
/// answer is answered.
fn slow_answer_after_handshake<D: Driver>() {
    let pki = Pki::new();
    let slow = Peer::start(
        pki.good(),
        Arc::new(|wire, _, ctl| {
            std::thread::sleep(CONNECT_LIMIT * 2);
            let body = r#"{"code":0,"message":"ok","data":{"mime_type":"image/png","file_name":"f.png","url":"https://127.0.0.1/f.png"}}"#;
            ctl.write(wire, json_answer(body).as_bytes())?;
            Ok(true)
        }),
    );
    let tunnel = ConnectProxy::start();
    for proxy in [None, Some(tunnel.url())] {
        let client: D = connect_limited_client(&pki, &slow, proxy.clone());
        let started = Instant::now();
        let media = client.get_media("8615800001795", "m");
        let took = started.elapsed();
        assert!(media.is_ok(), "{} (proxy {proxy:?}): {media:?}", D::NAME);
        assert!(took >= CONNECT_LIMIT * 2, "{took:?}");
    }
    assert_eq!(tunnel.tunnels(), 1, "{:?}", tunnel.connects());
}

/// A body cut by a TCP close without TLS `close_notify`: with its length announced and
/// without (read to the close), an error, never a short file. A body that ends with
/// `close_notify` is the file (the contrast).
fn truncation_without_close_notify<D: Driver>() {
    let pki = Pki::new();
    let half = &FILE[..FILE.len() / 2];
    let announced = |body: &[u8]| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            FILE.len()
        );
        [head.as_bytes(), body].concat()
    };
    let to_the_close = |body: &[u8]| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n";
        [head.as_bytes(), body].concat()
    };
    let cut_announced = Peer::start(
        pki.good(),
        downloads(move |w, ctl| ctl.write(w, &announced(half))),
    );
    let cut_unannounced = Peer::start(
        pki.good(),
        downloads(move |w, ctl| ctl.write(w, &to_the_close(half))),
    );
    // The contrast: the whole body, read to a close with `close_notify`, is the file.
    let whole = Peer::start(
        pki.good_closing(),
        downloads(move |w, ctl| ctl.write(w, &to_the_close(FILE))),
    );
    let client = |peer: &Peer| -> D {
        let roots = pki.roots();
        nxcloud(&peer.base("https"), move |t| t.extra_roots_der = roots)
    };
    let (bytes, _) = client(&whole)
        .download_media("8615800001795", "m", None)
        .expect("a body ended by close_notify is whole");
    assert_eq!(bytes, FILE);
    for (what, peer) in [
        ("cut, length announced", &cut_announced),
        ("cut, read to the close", &cut_unannounced),
    ] {
        let client = client(peer);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.png");
        let (error, took) = timed(what, || {
            client.download_media_to_path("8615800001795", "m", &target, None)
        });
        within(what, took, BOUND, &error);
        assert!(is_transport(&error), "{}, {what}: {error:?}", D::NAME);
        assert!(files_in(dir.path()).is_empty());
        let (error, _) = timed(what, || client.download_media("8615800001795", "m", None));
        assert!(
            is_transport(&error),
            "{}, {what} (memory): {error:?}",
            D::NAME
        );
        // The media was asked for each time: the error is the body's, not the handshake's.
        assert!(peer.seen().iter().filter(|s| s.is_download()).count() >= 2);
    }
}

// ---- proxies ----

fn through(proxy_url: &str) -> impl FnOnce(&mut TransportConfig) {
    let proxy = ProxyUrl::parse(proxy_url).expect("a proxy URL");
    move |t| t.proxy = ProxyConfig::Rules(ProxyRules::all(proxy))
}

/// A hand-played proxy with credentials: 502, garbage, silence after the `CONNECT`, a close
/// right after `200`, an answer head without end. Each a typed error within the bound, the
/// password never shown.
fn hostile_proxies<D: Driver>() {
    let pki = Pki::new();
    let target = Peer::start(pki.good(), downloads(|w, ctl| ctl.write(w, &file_answer())));
    let cases: Vec<(&str, Script, Expect)> = vec![
        (
            "CONNECT answered 502",
            always("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
            |e| matches!(e, Error::Connect { .. }),
        ),
        (
            "CONNECT answered garbage",
            always("SSH-2.0-OpenSSH_9.6\r\n\x1b[31mhello\r\n\r\n"),
            |e| matches!(e, Error::Connect { .. } | Error::Transport { .. }),
        ),
        (
            "CONNECT never answered",
            Arc::new(|wire, _, ctl| ctl.hold(wire).map(|()| false)),
            |e| {
                matches!(
                    e,
                    Error::Timeout {
                        phase: Phase::Connect,
                        limit: Limit::Connect,
                        ..
                    }
                )
            },
        ),
        (
            "a close after CONNECT 200",
            always("HTTP/1.1 200 Connection established\r\n\r\n"),
            |e| {
                matches!(
                    e,
                    Error::Connect { .. } | Error::Tls { .. } | Error::Transport { .. }
                )
            },
        ),
        (
            "a CONNECT answer whose head never ends",
            Arc::new(|wire, _, ctl| {
                ctl.write(wire, b"HTTP/1.1 200 Connection established\r\n")?;
                ctl.flood(wire, b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")?;
                Ok(false)
            }),
            |e| matches!(e, Error::Connect { .. } | Error::Timeout { .. }),
        ),
    ];
    for (what, script, expect) in cases {
        let proxy = Peer::http(script);
        let url = format!("http://user:{PROXY_PASSWORD}@{}", proxy.addr());
        let roots = pki.roots();
        let client: D = nxcloud(&target.base("https"), |t| {
            through(&url)(t);
            t.extra_roots_der = roots;
        });
        let (error, took) = timed(what, || client.get_media("8615800001795", "m"));
        within(what, took, BOUND, &error);
        assert!(expect(&error), "{}, {what}: {error:?}", D::NAME);
        if matches!(error, Error::Timeout { .. }) {
            assert_waited_on(&error, &target, Some(&url));
        }
        assert!(!proxy.seen().is_empty(), "{what}: the proxy was not asked");
        assert!(target.seen().is_empty(), "{what}: the target was reached");
        // What the client read of the proxy is bounded (not a deadline's worth of bytes).
        assert!(
            proxy.written() < 64 << 20,
            "{what}: the proxy wrote {} bytes",
            proxy.written()
        );
    }
}

/// The tests' real proxy, asked for a target where nothing listens: 502, a `Connect` error.
fn real_proxy_502<D: Driver>() {
    let proxy = ConnectProxy::start();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let client: D = nxcloud(&base, through(&proxy.url()));
    let (error, took) = timed("the real proxy's 502", || {
        client.get_media("8615800001795", "m")
    });
    within("the real proxy's 502", took, BOUND, &error);
    assert!(
        matches!(error, Error::Connect { .. }),
        "{}: {error:?}",
        D::NAME
    );
    assert!(
        proxy.connects().iter().all(|c| c.status == 502),
        "{:?}",
        proxy.connects()
    );
}

/// `NO_PROXY` names the target: the call goes direct, the proxy is never asked.
fn no_proxy<D: Driver>() {
    let proxy = ConnectProxy::start();
    let target = Peer::http(downloads(|w, ctl| ctl.write(w, &file_answer())));
    let mut rules = ProxyRules::all(ProxyUrl::parse(&proxy.url()).unwrap());
    rules.no_proxy = NoProxy::parse("example.invalid, 127.0.0.1");
    let client: D = nxcloud(&target.base("http"), |t| {
        t.proxy = ProxyConfig::Rules(rules)
    });
    let (bytes, _) = client
        .download_media("8615800001795", "m", Some(Sha256Digest::of(FILE)))
        .expect("direct");
    assert_eq!(bytes, FILE);
    assert!(proxy.connects().is_empty(), "{:?}", proxy.connects());
    assert!(target.connections() >= 1);
}

nx_conformance::conformance! {
    a_garbage_status_line_is_a_transport_error => garbage_status_line::<D, O>();
    header_floods_are_refused_at_once => header_floods::<D, O>();
    ambiguous_framing_is_refused => ambiguous_framing::<D, O>();
    odd_lengths_and_statuses_are_refused => odd_lengths_and_statuses::<D, O>();
    an_http10_answer_without_length_is_read_to_the_close => http10_without_length::<D>();
    bytes_past_the_length_are_never_the_next_answer => bytes_past_the_length::<D>();
    monstrous_chunks_are_bounded => monstrous_chunks::<D, O>();
    content_encoding_is_not_decoded => gzip_download::<D>();
    announced_oversize_json_is_refused => announced_oversize_json::<D>();
    hostile_json_is_malformed => hostile_json::<D, O>();
    server_text_is_escaped => escaped_server_text::<D, O>();
    redirects_are_not_followed => redirects::<D, O>();
    bad_certificates_are_tls_errors => bad_certificates::<D>();
    a_silent_tls_peer_times_out => silent_tls_peer_times_out::<D>();
    hung_handshakes_end_at_the_connect_limit => hung_handshakes::<D>();
    hung_proxies_end_at_the_connect_limit => hung_proxies::<D>();
    a_capped_connect_times_out_in_the_connect_phase => capped_connects::<D>();
    a_stalled_download_names_its_host => stalled_download_names_its_host::<D>();
    a_slow_answer_after_the_handshake_gets_the_attempts_limit => slow_answer_after_handshake::<D>();
    truncation_without_close_notify_is_an_error => truncation_without_close_notify::<D>();
    hostile_proxies_end_with_typed_errors => hostile_proxies::<D>();
    the_real_proxy_502_is_a_connect_error => real_proxy_502::<D>();
    no_proxy_goes_direct => no_proxy::<D>();
}
