//! The ureq side: the agent, TLS, sending a request, reading a capped answer, streaming bodies,
//! and mapping ureq's errors to the shared kinds.

use std::error::Error as StdError;
use std::io::{self, Cursor, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nx_protocol::body::{LengthCheck, Read as ReadNext, SourceChanged};
use nx_protocol::call::Watch;
use nx_protocol::call::framing::Excess;
use nx_protocol::config::{RootStore, TransportConfig};
use nx_protocol::error::Error;
use nx_protocol::proxy::{ProxyRules, ProxyUrl};

use crate::resolver::CachingResolver;
use nx_protocol::{OutgoingBody, ResponseError, Snippet};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::upload::{Opened, Reader};

/// How long a pooled connection may sit idle before it is dropped (as nx-async's pool).
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Idle connections kept per host: enough for the threads sharing a client not to reconnect
/// (ureq keeps 3, so 64 threads opened a connection for about one call in twenty; hyper, under
/// nx-async, keeps every one). An idle connection holds ureq's two 128 KiB buffers until
/// [`POOL_IDLE`] drops it.
///
/// Why 32 (BENCHMARKS.md item 3, 64 threads): ureq scans its idle connections twice per request
/// (`Pool::purge`), so what a request costs grows with how many are idle at once, not with this
/// cap; the cap only decides what a burst of idle threads keeps. Under callgrind, whose
/// serialized threads leave many idle at once, 16, 32 and 64 cost 59.3 k, 59.8 k and 60.1 k
/// instructions per getMedia with 66, 50 and 20 new connections per 6 400 calls (8: 60.2 k,
/// 119); run natively, even 8 reconnects almost never (the threads wait on the server, few are
/// idle). A reconnect to the real API is a TLS handshake, far more than scanning 16 more idle
/// entries on the requests around it, and 64 could hold another 8 MiB of buffers per host.
/// (To measure again: set this constant, `cargo build --profile profiling -p nx-bench`, then
/// `valgrind --tool=callgrind target/profiling/nx-bench blocking --runs 1 --requests 6400
/// --concurrency 64 --only sdk`, and the same with `--only none` to subtract.)
const POOL_PER_HOST: usize = 32;

/// Idle connections kept in all (the API's host and the object storage's, mostly).
const POOL_TOTAL: usize = 2 * POOL_PER_HOST;

/// The ureq limits of one attempt, from the call's [`Watch`]: the attempt's deadline as ureq's
/// global timeout, a transfer's head limit as its receive-response timeout, and the stall grace
/// period as its per-read and per-write limits (a body that moves nothing for that long is
/// stalled whatever the floor).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    global: Duration,
    recv_response: Option<Duration>,
    per_io: Option<Duration>,
    /// They are the agent's own: `request_timeout` for the whole attempt and nothing else.
    agents: bool,
}

impl Limits {
    /// Whether these are the agent's own limits (then the request is sent without a
    /// configuration of its own, which would copy the agent's settings).
    pub(crate) fn agents(&self) -> bool {
        self.agents
    }
}

/// How sending a request failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// With this error.
    Failed(Error),
    /// A limit of [`Limits`] passed: the call's watch says which.
    Timeout,
    /// The per-read or per-write limit passed: nothing moved for the stall grace period.
    Stalled,
    /// A new connection was not ready by the attempt's connect deadline: the call's watch
    /// names the limit.
    ConnectTimedOut,
}

impl From<Error> for SendError {
    fn from(error: Error) -> Self {
        SendError::Failed(error)
    }
}

/// One pooled, keep-alive ureq agent and the limits it runs under.
#[derive(Debug)]
pub(crate) struct Http {
    agent: ureq::Agent,
    request_timeout: Duration,
    proxies: Proxies,
    /// Checked once at construction ([`TransportConfig::user_agent_header`]).
    user_agent: http::HeaderValue,
}

/// nx-protocol's proxy rules, and the ureq proxy for each scheme they name (ureq tunnels with
/// HTTP CONNECT). The decision per target is the rules'; ureq's own `NO_PROXY` matching is not
/// used (its proxies carry no exceptions), and the agent has no proxy: a proxied request sets
/// one in its own configuration, which ureq's pool keys connections by.
///
/// With our connector chain (ureq's `DefaultConnector`) and [`CachingResolver`]: for a proxied
/// request ureq does not resolve the target (the proxy does), and its CONNECT step resolves the
/// proxy's host through our resolver (an IP literal at once, a name from the cache).
struct Proxies {
    rules: ProxyRules,
    https: Option<ureq::Proxy>,
    http: Option<ureq::Proxy>,
}

impl Proxies {
    fn new(rules: ProxyRules) -> Result<Self, Error> {
        let ureq_proxy = |proxy: &Option<ProxyUrl>| {
            proxy
                .as_ref()
                .map(|proxy| {
                    let host = if proxy.host().contains(':') {
                        format!("[{}]", proxy.host())
                    } else {
                        proxy.host().to_owned()
                    };
                    let mut builder = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
                        .host(&host)
                        .port(proxy.port());
                    if let Some((user, password)) = proxy.credentials() {
                        builder = builder.username(user).password(password);
                    }
                    // The error would not name the proxy: ours does, without credentials.
                    builder.build().map_err(|_| {
                        Error::Config(format!("the proxy {proxy} is not usable by ureq"))
                    })
                })
                .transpose()
        };
        Ok(Self {
            https: ureq_proxy(&rules.https)?,
            http: ureq_proxy(&rules.http)?,
            rules,
        })
    }

    /// The ureq proxy for a request to `target`, if the rules name one.
    fn for_target(&self, target: &http::Uri) -> Option<&ureq::Proxy> {
        self.rules.proxy_for(target)?;
        if target.scheme() == Some(&http::uri::Scheme::HTTPS) {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
    }
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ureq's `Debug` of a proxy shows the user name's first letter: show only ours.
        self.rules.fmt(f)
    }
}

impl Http {
    /// The agent for `config`: rustls with the crate's crypto provider, the configured root
    /// store plus `config.extra_roots_der`; 4xx/5xx are answers, not errors; redirects are not
    /// followed; the proxy of nx-protocol's rules for each target (never ureq's own reading of
    /// the environment); a new connection (DNS, TCP, the proxy's CONNECT, TLS) within the
    /// attempt's connect deadline ([`crate::deadline::ConnectBound`], ureq's own
    /// `connect_timeout` behind it); by default `request_timeout` for a whole attempt (each
    /// request narrows it to its call's limits); a connector sends a request's head with its
    /// in-memory body in one write ([`crate::cork`]); the last caps every socket wait at the
    /// call's current limit ([`crate::deadline`]).
    pub(crate) fn new(config: &TransportConfig) -> Result<Self, Error> {
        // Refused here as nx-async does, rather than by ureq on every request.
        let user_agent = config.user_agent_header()?;
        let mut roots: Vec<Certificate<'static>> = match config.root_store {
            RootStore::Native => native_roots()?,
            _ => webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|cert| Certificate::from_der(cert.as_ref()))
                .collect(),
        };
        for der in &config.extra_roots_der {
            // ureq skips certificates it cannot parse; refuse them here instead, as nx-async does.
            rustls::RootCertStore::empty()
                .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
                .map_err(|e| Error::Config(format!("root certificate refused: {e}")))?;
            roots.push(Certificate::from_der(der).to_owned());
        }
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crypto_provider())
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(config.user_agent.as_str())
            .accept("")
            .tls_config(tls)
            .timeout_resolve(Some(config.connect_timeout))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            .max_idle_age(POOL_IDLE)
            .max_idle_connections(POOL_TOTAL)
            .max_idle_connections_per_host(POOL_PER_HOST)
            .build();
        // ureq's default resolver starts a thread per request (see `resolver.rs`).
        use ureq::unversioned::transport::Connector as _;
        let connector =
            crate::deadline::ConnectBound(ureq::unversioned::transport::DefaultConnector::new())
                .chain(crate::cork::CorkConnector)
                .chain(crate::deadline::DeadlineConnector);
        let agent = ureq::Agent::with_parts(agent_config, connector, CachingResolver::new());
        let rules = config.proxy.resolve(|name| std::env::var(name).ok())?;
        Ok(Self {
            agent,
            request_timeout: config.request_timeout,
            proxies: Proxies::new(rules)?,
            user_agent,
        })
    }

    /// The ureq limits of `watch`'s attempt, begun at `now`.
    pub(crate) fn limits(&self, watch: &Watch, now: Duration) -> Limits {
        let global = watch.deadline().saturating_sub(now);
        let recv_response = watch.head_timeout();
        let per_io = watch.stall().map(|s| s.grace);
        Limits {
            global,
            recv_response,
            per_io,
            agents: recv_response.is_none() && per_io.is_none() && global >= self.request_timeout,
        }
    }

    /// Sends a request nx-protocol built, under `limits`: a body of bytes as it is, a streamed
    /// body from `source` (each read reported to `progress`, which says whether to go on), no
    /// body at all when it is empty. Returns the answer's head; the body is read from the
    /// response afterwards.
    pub(crate) fn send(
        &self,
        request: http::Request<OutgoingBody>,
        source: Option<Opened>,
        limits: &Limits,
        progress: Option<&mut dyn FnMut(u64, bool) -> bool>,
    ) -> Result<http::Response<ureq::Body>, SendError> {
        let (mut parts, outgoing) = request.into_parts();
        parts
            .headers
            .insert(http::header::USER_AGENT, self.user_agent.clone());
        let (error, may_have_reached_server) = if matches!(outgoing, OutgoingBody::Empty) {
            // A GET or DELETE: no body, not even an empty one.
            match self.run(http::Request::from_parts(parts, ()), limits) {
                Ok(response) => return Ok(response),
                Err(error) => (error, true),
            }
        } else {
            // A body in memory goes out in one write with the head (`cork.rs`).
            let _cork = matches!(outgoing, OutgoingBody::Bytes(ref b) if !b.is_empty())
                .then(crate::cork::Next::head_with_body);
            let mut body = RequestBody::new(outgoing, source, progress)?;
            let request = http::Request::from_parts(parts, ureq::SendBody::from_reader(&mut body));
            match self.run(request, limits) {
                Ok(response) => return Ok(response),
                Err(error) => {
                    if body.stalled {
                        return Err(SendError::Stalled);
                    }
                    if let Some(source) = body.take_source_error() {
                        return Err(source.into());
                    }
                    (error, body.may_have_reached_server())
                }
            }
        };
        Err(self.classify(error, may_have_reached_server))
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        limits: &Limits,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let proxy = self.proxies.for_target(request.uri()).cloned();
        // The agent's own limit is `request_timeout` for the whole attempt: a request that needs
        // no other, and no proxy, is sent as it is (configuring one copies the agent's settings).
        let request = if limits.agents && proxy.is_none() {
            request
        } else {
            self.agent
                .configure_request(request)
                .proxy(proxy)
                .timeout_global(Some(limits.global))
                .timeout_recv_response(limits.recv_response)
                .timeout_per_read(limits.per_io)
                .timeout_per_write(limits.per_io)
                .build()
        };
        self.agent.run(request)
    }

    /// Maps a ureq error from sending a request (up to the answer's head) to the shared kinds.
    /// `may_have_reached_server` is false when ureq had not yet read a byte of a non-empty
    /// request body, so at most the request's head went out and the server could not act on it.
    /// A connect or TLS error's host is left empty: the call machine names it from its own URL
    /// ([`nx_protocol::call::Call::failed`]), so no request keeps a copy of its URI for that.
    fn classify(&self, error: ureq::Error, may_have_reached_server: bool) -> SendError {
        let kind = kind_of(&error, may_have_reached_server);
        SendError::Failed(match kind {
            Kind::Connect => Error::Connect {
                host: String::new(),
                source: Box::new(error),
            },
            Kind::ConnectTimeout => return SendError::ConnectTimedOut,
            Kind::Tls => Error::Tls {
                host: String::new(),
                source: Box::new(error),
            },
            Kind::Timeout { stall: false } => return SendError::Timeout,
            Kind::Timeout { stall: true } => return SendError::Stalled,
            Kind::Status(status) => Error::Response(ResponseError::Http {
                status,
                snippet: Snippet::of(b""),
            }),
            Kind::Request => Error::Config(format!(
                "the request could not be sent: {}",
                request_error_text(&error)
            )),
            Kind::Transport => Error::Transport {
                source: Box::new(error),
            },
        })
    }
}

/// rustls' crypto provider: ring, or aws-lc-rs with the `aws-lc-rs` feature. Chosen explicitly,
/// whatever process-wide default another crate may have installed.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// The operating system's root certificates.
#[cfg(feature = "native-roots")]
fn native_roots() -> Result<Vec<Certificate<'static>>, Error> {
    let found = rustls_native_certs::load_native_certs();
    let certs = nx_protocol::config::native_roots(found.certs, &found.errors)?;
    Ok(certs
        .iter()
        .map(|cert| Certificate::from_der(cert.as_ref()).to_owned())
        .collect())
}

#[cfg(not(feature = "native-roots"))]
fn native_roots() -> Result<Vec<Certificate<'static>>, Error> {
    Err(nx_protocol::config::native_roots_missing("nx-blocking"))
}

/// The shared kind a ureq error maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    ConnectTimeout,
    Tls,
    /// `stall`: the per-read or per-write limit (the stall grace period) passed.
    Timeout {
        stall: bool,
    },
    Status(http::StatusCode),
    Request,
    Transport,
}

/// How a ureq error from sending a request maps to the shared kinds:
///
/// - a timeout while making the connection (DNS, TCP, the proxy's CONNECT, TLS: ureq's own
///   connect or DNS timeout, or [`crate::deadline::ConnectTimedOut`]): `ConnectTimeout`.
/// - DNS failure, refused, no address: `Connect`; an unreachable
///   host or network: `Connect` before the request was sent, else `Transport`.
/// - rustls anywhere in the chain, or ureq's own TLS errors: `Tls`.
/// - any other timeout: `Timeout`, a stall when it was the per-read or per-write limit.
/// - a request ureq refuses to build (bad URI, https-only): `Request` (a configuration error,
///   not retried).
/// - anything else (reset, broken pipe, truncated or malformed answer): `Connect` when the
///   request's body had not started (the server cannot have acted on a request whose announced
///   body never came), else `Transport`.
fn kind_of(error: &ureq::Error, may_have_reached_server: bool) -> Kind {
    if has_rustls_error(error) {
        return Kind::Tls;
    }
    let unsent = |kind| {
        if may_have_reached_server {
            kind
        } else {
            Kind::Connect
        }
    };
    match error {
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
            Kind::ConnectTimeout
        }
        ureq::Error::Timeout(t) => Kind::Timeout {
            stall: matches!(t, ureq::Timeout::PerRead | ureq::Timeout::PerWrite),
        },
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_) => Kind::Connect,
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => Kind::Tls,
        ureq::Error::Rustls(_) | ureq::Error::Pem(_) => Kind::Tls,
        ureq::Error::StatusCode(code) => {
            http::StatusCode::from_u16(*code).map_or(Kind::Transport, Kind::Status)
        }
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::InvalidProxyUrl => Kind::Request,
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<crate::deadline::ConnectTimedOut>()) =>
        {
            Kind::ConnectTimeout
        }
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable => Kind::Connect,
            // Unreachable hosts and networks can also surface on an established socket, after
            // the request went out (an ICMP error after retransmissions): a connect failure
            // only while nothing of the request was sent, so a send is never resent after it.
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown => unsent(Kind::Transport),
            _ if is_dns_failure(io) => Kind::Connect,
            io::ErrorKind::TimedOut => unsent(Kind::Timeout { stall: false }),
            _ => unsent(Kind::Transport),
        },
        _ => unsent(Kind::Transport),
    }
}

/// A name lookup failure: std reports getaddrinfo's errors as an uncategorized `io::Error`
/// without an OS error code, whose text starts like this.
fn is_dns_failure(error: &io::Error) -> bool {
    error.raw_os_error().is_none()
        && error
            .to_string()
            .starts_with("failed to lookup address information")
}

/// Whether a rustls error is anywhere in the chain (ureq wraps handshake failures in `io::Error`).
fn has_rustls_error(error: &ureq::Error) -> bool {
    if matches!(error, ureq::Error::Rustls(_)) {
        return true;
    }
    let mut next: Option<&(dyn StdError + 'static)> = match error {
        ureq::Error::Io(io) => Some(io),
        _ => None,
    };
    while let Some(cause) = next {
        if cause.downcast_ref::<rustls::Error>().is_some()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// What ureq refused, without the URL itself (a download URL's query is a secret).
fn request_error_text(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::BadUri(_) => "the URL is not usable",
        ureq::Error::Http(_) => "a header or the URL is not valid",
        ureq::Error::RequireHttpsOnly(_) => "the URL is not https",
        ureq::Error::InvalidProxyUrl => "the proxy URL is not valid",
        _ => "ureq refused it",
    }
}

/// Maps a failure while reading an answer's body: a ureq timeout (carried inside the
/// `io::Error`) or a socket timeout is a passed limit (a stall when it was the per-read one),
/// anything else (reset, truncated body, malformed chunking, more framing or trailers than
/// [`nx_protocol::call::framing`] allows) is `Transport`.
pub(crate) fn body_error(error: io::Error) -> SendError {
    if let Some(excess) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Excess>())
    {
        return SendError::Failed(Error::Transport {
            source: Box::new(*excess),
        });
    }
    let ureq_timeout = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .and_then(|e| match e {
            ureq::Error::Timeout(t) => Some(*t),
            _ => None,
        });
    match ureq_timeout {
        Some(ureq::Timeout::PerRead | ureq::Timeout::PerWrite) => SendError::Stalled,
        Some(_) => SendError::Timeout,
        None if error.kind() == io::ErrorKind::TimedOut => SendError::Timeout,
        None => SendError::Failed(Error::Transport {
            source: Box::new(error),
        }),
    }
}

/// A request body as ureq reads it: `head`, then exactly `stream_len` bytes of the caller's
/// source, then `tail` (`Read::chain`), so nothing is buffered beyond ureq's output buffer. The
/// request carries the exact `Content-Length` nx-protocol computed, so ureq neither adds its own
/// framing nor switches to chunked encoding.
pub(crate) struct RequestBody<'a> {
    chain: io::Chain<io::Chain<Cursor<Bytes>, Exact>, Cursor<Bytes>>,
    len: u64,
    touched: bool,
    /// Told of every read (bytes, and whether the body ended); `false` stops the upload.
    progress: Option<&'a mut dyn FnMut(u64, bool) -> bool>,
    /// `progress` stopped it: a limit passed.
    pub(crate) stalled: bool,
}

impl<'a> RequestBody<'a> {
    /// The body for a built request: bytes as they are, a streamed part from `source`.
    pub(crate) fn new(
        outgoing: OutgoingBody,
        source: Option<Opened>,
        progress: Option<&'a mut dyn FnMut(u64, bool) -> bool>,
    ) -> Result<Self, Error> {
        let len = outgoing.content_length();
        let (head, exact, tail) = match (outgoing, source) {
            (OutgoingBody::Empty, _) => (Bytes::new(), Exact::none(), Bytes::new()),
            (OutgoingBody::Bytes(bytes), _) => (bytes, Exact::none(), Bytes::new()),
            (OutgoingBody::Streamed(s), Some(source)) => {
                (s.head, Exact::new(source, s.stream_len), s.tail)
            }
            (OutgoingBody::Streamed(_), None) => {
                return Err(Error::Config(
                    "this operation streams a body: call it with a source".into(),
                ));
            }
        };
        Ok(Self {
            chain: Cursor::new(head).chain(exact).chain(Cursor::new(tail)),
            len,
            touched: false,
            progress,
            stalled: false,
        })
    }

    /// Whether the request may have reached the server: ureq started reading the body, or the
    /// body is empty (then the head alone is the whole request, and nothing tells).
    pub(crate) fn may_have_reached_server(&self) -> bool {
        self.touched || self.len == 0
    }

    /// The source's own failure (a local read error, or a [`SourceChanged`]), if any.
    fn take_source_error(&mut self) -> Option<Error> {
        self.chain.get_mut().0.get_mut().1.take_error()
    }
}

impl Read for RequestBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.touched = true;
        let n = self.chain.read(buf)?;
        if !buf.is_empty()
            && let Some(progress) = self.progress.as_mut()
            && !progress(n as u64, n == 0)
        {
            self.stalled = true;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the upload moved too slowly",
            ));
        }
        Ok(n)
    }
}

/// Exactly the declared length of a source, by nx-protocol's rule ([`LengthCheck`]): fewer
/// bytes, or one more, is [`SourceChanged`] (naming the source's file), found before the last
/// bytes are handed to ureq (so the request never reaches its `Content-Length`, and ureq drops
/// the connection). The source's errors are kept, so the attempt fails as local I/O rather
/// than as a network failure.
pub(crate) struct Exact {
    source: Option<Reader>,
    /// The source's file, for a [`SourceChanged`].
    path: Option<std::path::PathBuf>,
    check: LengthCheck,
    error: Option<io::Error>,
}

impl Exact {
    fn none() -> Self {
        Self {
            source: None,
            path: None,
            check: LengthCheck::new(0),
            error: None,
        }
    }

    fn new(source: Opened, len: u64) -> Self {
        Self {
            source: Some(source.reader),
            path: source.path,
            check: LengthCheck::new(len),
            error: None,
        }
    }

    fn fail(&mut self, error: io::Error) -> io::Error {
        let copy = io::Error::new(error.kind(), error.to_string());
        self.error = Some(error);
        copy
    }

    fn changed(&mut self, changed: SourceChanged) -> io::Error {
        let changed = changed.at(self.path.as_deref());
        self.fail(io::Error::new(io::ErrorKind::InvalidData, changed))
    }

    /// The source's own failure (a local read error, or a [`SourceChanged`]), if any.
    fn take_error(&mut self) -> Option<Error> {
        let error = self.error.take()?;
        Some(
            match error
                .get_ref()
                .and_then(|e| e.downcast_ref::<SourceChanged>())
            {
                Some(changed) => Error::SourceChanged(changed.clone()),
                None => Error::io("reading the upload source", error),
            },
        )
    }
}

/// `read`, again while it is interrupted.
fn read_on(source: &mut Reader, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            read => return read,
        }
    }
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.check.want(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let Some(source) = self.source.as_mut() else {
            return Err(self.fail(io::Error::other("the upload source is missing")));
        };
        let n = match read_on(source, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e)),
        };
        match self.check.read(n) {
            Ok(ReadNext::Deliver) => Ok(n),
            Ok(ReadNext::ProbeThenDeliver) => match read_on(source, &mut [0; 1]) {
                Ok(more) => match self.check.probed(more) {
                    Ok(()) => Ok(n),
                    Err(changed) => Err(self.changed(changed)),
                },
                Err(e) => Err(self.fail(e)),
            },
            Err(changed) => Err(self.changed(changed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nx_protocol::StreamedBody;

    fn io(kind: io::ErrorKind) -> ureq::Error {
        ureq::Error::Io(io::Error::new(kind, "test"))
    }

    #[test]
    fn ureq_errors_map_to_the_shared_kinds() {
        use io::ErrorKind as K;
        let connect_timeout = ureq::Error::Timeout(ureq::Timeout::Connect);
        let resolve_timeout = ureq::Error::Timeout(ureq::Timeout::Resolve);
        let cases: Vec<(ureq::Error, bool, Kind)> = vec![
            (ureq::Error::HostNotFound, true, Kind::Connect),
            (io(K::ConnectionRefused), true, Kind::Connect),
            (io(K::HostUnreachable), false, Kind::Connect),
            (io(K::NetworkUnreachable), false, Kind::Connect),
            (io(K::HostUnreachable), true, Kind::Transport),
            (io(K::NetworkDown), true, Kind::Transport),
            (connect_timeout, true, Kind::ConnectTimeout),
            (resolve_timeout, true, Kind::ConnectTimeout),
            (
                crate::deadline::connect_error(ureq::Error::Timeout(ureq::Timeout::Global)),
                true,
                Kind::ConnectTimeout,
            ),
            // Anything else while connecting is left as it was.
            (
                crate::deadline::connect_error(io(K::ConnectionRefused)),
                true,
                Kind::Connect,
            ),
            (ureq::Error::Tls("bad name"), true, Kind::Tls),
            (
                ureq::Error::Rustls(rustls::Error::DecryptError),
                true,
                Kind::Tls,
            ),
            (
                ureq::Error::Io(io::Error::new(
                    K::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                false,
                Kind::Tls,
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                true,
                Kind::Timeout { stall: false },
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::RecvResponse),
                true,
                Kind::Timeout { stall: false },
            ),
            // The per-read and per-write limits are the stall grace period.
            (
                ureq::Error::Timeout(ureq::Timeout::PerRead),
                true,
                Kind::Timeout { stall: true },
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::PerWrite),
                true,
                Kind::Timeout { stall: true },
            ),
            // After the body started: the request may have been carried out.
            (io(K::ConnectionReset), true, Kind::Transport),
            (io(K::UnexpectedEof), true, Kind::Transport),
            (io(K::BrokenPipe), true, Kind::Transport),
            (ureq::Error::BodyStalled, true, Kind::Transport),
            // Before the body started: the server cannot have acted on it.
            (io(K::ConnectionReset), false, Kind::Connect),
            (io(K::UnexpectedEof), false, Kind::Connect),
            (ureq::Error::BadUri("x".into()), true, Kind::Request),
            (
                ureq::Error::RequireHttpsOnly("x".into()),
                true,
                Kind::Request,
            ),
            (
                ureq::Error::StatusCode(503),
                true,
                Kind::Status(http::StatusCode::SERVICE_UNAVAILABLE),
            ),
        ];
        for (error, sent, expected) in cases {
            let text = error.to_string();
            assert_eq!(kind_of(&error, sent), expected, "{text} (sent: {sent})");
        }
    }

    #[test]
    fn a_failed_name_lookup_is_a_connect_failure() {
        // What std returns for an unresolvable name (no OS error code).
        let lookup =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(kind_of(&ureq::Error::Io(lookup), true), Kind::Connect);
    }

    #[test]
    fn errors_reading_a_body_are_timeouts_or_transport() {
        let wrapped = ureq::Error::Timeout(ureq::Timeout::RecvBody).into_io();
        assert!(matches!(body_error(wrapped), SendError::Timeout));
        let per_read = ureq::Error::Timeout(ureq::Timeout::PerRead).into_io();
        assert!(matches!(body_error(per_read), SendError::Stalled));
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "slow");
        assert!(matches!(body_error(timed_out), SendError::Timeout));
        // More framing or trailers than nx-protocol allows: a transport error naming it.
        let excess = nx_protocol::call::framing::check(1 << 20, 5, 0).unwrap_err();
        match body_error(io::Error::new(io::ErrorKind::InvalidData, excess)) {
            SendError::Failed(Error::Transport { source }) => {
                assert_eq!(source.downcast_ref::<Excess>(), Some(&excess));
            }
            other => panic!("{other:?}"),
        }
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "Peer disconnected");
        assert!(matches!(
            body_error(eof),
            SendError::Failed(Error::Transport { .. })
        ));
    }

    /// Progress that never stops an upload.
    fn go_on(_: u64, _: bool) -> bool {
        true
    }

    fn read_all(body: &mut RequestBody<'_>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            match body.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// A source of `bytes`, from the file `path` if given.
    fn opened(bytes: &[u8], path: Option<&str>) -> Option<Opened> {
        Some(Opened {
            reader: Box::new(Cursor::new(bytes.to_vec())),
            path: path.map(std::path::PathBuf::from),
        })
    }

    fn streamed(stream_len: u64) -> OutgoingBody {
        OutgoingBody::Streamed(StreamedBody {
            head: Bytes::from_static(b"HEAD"),
            stream_len,
            tail: Bytes::from_static(b"TAIL"),
        })
    }

    #[test]
    fn a_streamed_body_is_head_exactly_stream_len_bytes_then_tail() {
        let mut go_on = go_on;
        let source = opened(b"0123456789", None);
        let mut body = RequestBody::new(streamed(10), source, Some(&mut go_on)).unwrap();
        assert!(!body.may_have_reached_server());
        assert_eq!(read_all(&mut body).unwrap(), b"HEAD0123456789TAIL");
        assert!(body.may_have_reached_server());
        assert!(body.take_source_error().is_none());
    }

    #[test]
    fn a_short_long_or_failing_source_is_kept_as_a_local_error() {
        use nx_protocol::body::FoundLength;
        let mut go_on = go_on;
        // A file's change names the file where it is found.
        let source = opened(b"0123", Some("in/report.pdf"));
        let mut body = RequestBody::new(streamed(10), source, Some(&mut go_on)).unwrap();
        assert_eq!(
            read_all(&mut body).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        match body.take_source_error() {
            Some(Error::SourceChanged(changed)) => {
                assert_eq!(changed.path.as_deref(), Some("in/report.pdf".as_ref()));
                assert_eq!(changed.declared, 10);
                assert_eq!(changed.found, FoundLength::Shorter(4));
            }
            other => panic!("{other:?}"),
        }

        // One byte more than declared: the read that completed the length is never handed
        // on, so neither the last bytes nor the tail go out.
        let source = opened(b"0123456789X", None);
        let mut body = RequestBody::new(streamed(10), source, Some(&mut go_on)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let err = loop {
            match body.read(&mut buf) {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            out, b"HEAD0123456",
            "the bytes completing the length were held back"
        );
        match body.take_source_error() {
            Some(Error::SourceChanged(changed)) => {
                assert_eq!(changed.path, None);
                assert_eq!(changed.found, FoundLength::Longer);
            }
            other => panic!("{other:?}"),
        }

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "disk says no",
                ))
            }
        }
        let broken = Opened {
            reader: Box::new(Broken),
            path: None,
        };
        let mut body = RequestBody::new(streamed(10), Some(broken), Some(&mut go_on)).unwrap();
        assert_eq!(
            read_all(&mut body).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            body.take_source_error().unwrap().to_string(),
            "reading the upload source: disk says no"
        );
    }

    #[test]
    fn bytes_and_empty_bodies_need_no_source() {
        let mut go_on = go_on;
        let mut body = RequestBody::new(
            OutgoingBody::Bytes(Bytes::from_static(b"{}")),
            None,
            Some(&mut go_on),
        )
        .unwrap();
        assert_eq!(read_all(&mut body).unwrap(), b"{}");
        let empty = RequestBody::new(OutgoingBody::Empty, None, None).unwrap();
        // A head-only request: nothing tells whether it arrived.
        assert!(empty.may_have_reached_server());
        assert!(matches!(
            RequestBody::new(streamed(1), None, Some(&mut go_on)),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn extra_roots_must_be_certificates() {
        let credentials = nx_protocol::Credentials::new("k", "s");
        let mut config = nx_protocol::config::ClientConfig::new(credentials, "test");
        // A real root (DER) from the built-in set is accepted as an extra one.
        config
            .transport
            .extra_roots_der
            .push(webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].to_vec());
        assert!(Http::new(&config.transport).is_ok());
        config
            .transport
            .extra_roots_der
            .push(b"not a certificate".to_vec());
        assert!(matches!(
            Http::new(&config.transport),
            Err(Error::Config(_))
        ));
    }
}
