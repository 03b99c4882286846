//! A real HTTP `CONNECT` proxy for the tests, on 127.0.0.1: it parses the `CONNECT` request,
//! checks `Proxy-Authorization` when it has credentials, opens the tunnel (to loopback targets
//! only) and copies bytes both ways. It knows nothing of the SDK: whatever crosses the tunnel
//! (TLS, or plain HTTP for an `http` target) is opaque bytes to it.
//!
//! Bounded: a request head of at most 8 KiB read within 5 s, tunnels idle for at most 30 s,
//! 64 tunnels at once; it stops when dropped, and by itself after 10 minutes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TUNNELS: usize = 64;
const LIFETIME: Duration = Duration::from_secs(600);

/// What the proxy did with one `CONNECT` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The authority asked for, as sent (`host:port`).
    pub target: String,
    /// The status answered: 200 (tunnel opened), 407, 403 (not loopback), 400, 502.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    open: AtomicUsize,
    log: Mutex<Vec<Connect>>,
}

/// A running proxy. Stops when dropped.
#[derive(Debug)]
pub struct ConnectProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// A proxy that lets anyone tunnel.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A proxy that answers 407 unless `Proxy-Authorization: Basic base64(user:password)`.
    pub fn with_credentials(user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::spawn(Some(format!("Basic {token}")))
    }

    fn spawn(expected_auth: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy binds");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("connect-proxy".into())
            .spawn(move || accept_loop(listener, state, expected_auth))
            .expect("the proxy thread starts");
        Self {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Every `CONNECT` answered so far, in order.
    pub fn connects(&self) -> Vec<Connect> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many tunnels were opened.
    pub fn tunnels(&self) -> usize {
        self.connects().iter().filter(|c| c.status == 200).count()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, expected_auth: Option<String>) {
    let started = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < LIFETIME {
        match listener.accept() {
            Ok((client, _)) if shared.open.load(Ordering::SeqCst) < MAX_TUNNELS => {
                shared.open.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&shared);
                let expected = expected_auth.clone();
                std::thread::spawn(move || {
                    let _ = handle(client, &shared, expected.as_deref());
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
            // Over the limit: closed at once.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One client connection: the `CONNECT` head, the checks, then the tunnel.
fn handle(client: TcpStream, shared: &Shared, expected_auth: Option<&str>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?).take(MAX_HEAD as u64);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // closed, or the head is too long
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    // Bytes the client sent after the head (a TLS hello sent early) must reach the target.
    let early = reader.into_inner().buffer().to_vec();
    let mut client = client;
    let request = lines.first().map(String::as_str).unwrap_or_default();
    let mut words = request.split(' ');
    let (method, target, version) = (words.next(), words.next(), words.next());
    let target = target.unwrap_or_default().to_owned();
    let answer = |client: &mut TcpStream, status: u16, reason: &str, extra: &str| {
        shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Connect {
                target: target.clone(),
                status,
            });
        write!(
            client,
            "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    if method != Some("CONNECT") || !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return answer(&mut client, 400, "Bad Request", "");
    }
    if let Some(expected) = expected_auth {
        let given = lines[1..].iter().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        });
        if given.as_deref() != Some(expected) {
            return answer(
                &mut client,
                407,
                "Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"tests\"\r\n",
            );
        }
    }
    // Only this machine's loopback: the tests never reach any other address.
    let loopback = target
        .parse::<SocketAddr>()
        .ok()
        .filter(|addr| addr.ip().is_loopback());
    let Some(addr) = loopback else {
        return answer(&mut client, 403, "Forbidden", "");
    };
    let Ok(mut upstream) = TcpStream::connect_timeout(&addr, HEAD_TIMEOUT) else {
        return answer(&mut client, 502, "Bad Gateway", "");
    };
    answer(&mut client, 200, "Connection established", "")?;
    upstream.write_all(&early)?;
    for stream in [&client, &upstream] {
        stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    }
    let (mut client_in, mut upstream_out) = (client.try_clone()?, upstream.try_clone()?);
    let up = std::thread::spawn(move || copy(&mut client_in, &mut upstream_out));
    copy(&mut upstream, &mut client);
    let _ = up.join();
    Ok(())
}

/// Copies until end of stream, an error or idleness, then ends both directions.
fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let _ = io::copy(from, to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
