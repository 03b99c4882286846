//! The connector under TLS: a TCP connection straight to the target, or an HTTP `CONNECT`
//! tunnel through the proxy nx-protocol's [`ProxyRules::proxy_for`] names for it (hyper-util's
//! `Tunnel`). TLS to the target then runs inside the tunnel, so the proxy sees only host and
//! port.
//!
//! And the bound over all of it ([`Bounded`], around the TLS connector): a new connection, from
//! TCP to the end of the TLS handshake, must be ready by the connect deadline of the attempt
//! that asked for it ([`nx_protocol::call::Watch::connect_deadline`], handed down by
//! [`polling`]), else it fails with [`ConnectTimedOut`], which the driver reports to the call
//! machine; a request still waiting for its new connection once that deadline passed is the
//! same timeout, whichever timer woke it first ([`polling`] says whether it waits). A pooled
//! connection is reused without calling the connector: no bound, no phase.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioIo;
use nx_protocol::error::BoxError;
use nx_protocol::proxy::ProxyRules;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

/// Direct or tunnelled TCP, per target.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    rules: Arc<ProxyRules>,
}

impl Connector {
    pub(crate) fn new(tcp: HttpConnector, rules: ProxyRules) -> Self {
        Self {
            tcp,
            rules: Arc::new(rules),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Uri) -> Connecting {
        let Some(proxy) = self.rules.proxy_for(&target) else {
            let connecting = self.tcp.call(target);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let mut tunnel = Tunnel::new(proxy.uri(), self.tcp.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth);
        }
        let shown = proxy.to_string();
        // Tunnel takes a missing port for 443: name it, so an http target gets 80.
        let connecting = with_port(&target).map(|target| tunnel.call(target));
        Box::pin(async move {
            match connecting {
                Ok(connecting) => connecting.await.map_err(|source| {
                    Box::new(ProxyError {
                        proxy: shown,
                        source: source.into(),
                    }) as BoxError
                }),
                Err(e) => Err(e),
            }
        })
    }
}

/// What the request being polled on this thread hands its connector, and hears back.
#[derive(Clone, Copy)]
struct Scope {
    /// Its connect deadline.
    by: Option<Instant>,
    /// A new connection it waits for was polled, and is not ready yet.
    waiting: bool,
}

thread_local! {
    /// The scope of the request being polled on this thread.
    static SCOPE: Cell<Scope> = const { Cell::new(Scope { by: None, waiting: false }) };
}

/// Runs `poll` (one poll of a request handed to hyper) with `deadline` as the connect deadline
/// of a connection hyper opens meanwhile; sets `waiting` to whether the request still waits for
/// a new connection after it (a [`Bounded`] connection was polled and is not ready). hyper calls
/// the connector while the request's future is polled (on the first poll, or a later one when
/// it retries on a fresh connection), and polls that connection's future inside the request's
/// as long as the request waits for it, so both pass through the thread; a connection hyper
/// finishes in the background (the request got a pooled one meanwhile) keeps the deadline it
/// was given and is not the request's any more.
#[inline]
pub(crate) fn polling<T>(deadline: Instant, waiting: &mut bool, poll: impl FnOnce() -> T) -> T {
    /// Puts back the thread's earlier scope, however `poll` ends, and notes what the request's
    /// said.
    struct Restore<'a>(Scope, &'a mut bool);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            *self.1 = SCOPE.with(|scope| scope.replace(self.0)).waiting;
        }
    }
    let ours = Scope {
        by: Some(deadline),
        waiting: false,
    };
    let _restore = Restore(SCOPE.with(|scope| scope.replace(ours)), waiting);
    poll()
}

/// A [`Bounded`] connection was polled and is not ready: the request being polled, if any,
/// waits for it.
fn still_connecting() {
    SCOPE.with(|scope| {
        let mut current = scope.get();
        if current.by.is_some() {
            current.waiting = true;
            scope.set(current);
        }
    });
}

/// A connector (TCP or tunnel, then TLS) whose every connection is bounded by the connect
/// deadline of the attempt that asked for it, or by `connect_timeout` from its start when no
/// attempt's deadline is in scope.
#[derive(Clone, Debug)]
pub(crate) struct Bounded<C> {
    inner: C,
    connect_timeout: Duration,
}

impl<C> Bounded<C> {
    pub(crate) fn new(inner: C, connect_timeout: Duration) -> Self {
        Self {
            inner,
            connect_timeout,
        }
    }
}

type BoundedFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<C> Service<Uri> for Bounded<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = BoundedFuture<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Uri) -> Self::Future {
        let by = SCOPE
            .with(|scope| scope.get().by)
            .unwrap_or_else(|| Instant::now() + self.connect_timeout);
        let connecting = tokio::time::timeout_at(by, self.inner.call(target));
        Box::pin(async move {
            let mut connecting = std::pin::pin!(connecting);
            let connected = std::future::poll_fn(|cx| {
                let polled = connecting.as_mut().poll(cx);
                if polled.is_pending() {
                    still_connecting();
                }
                polled
            });
            match connected.await {
                Ok(Ok(connection)) => Ok(connection),
                Ok(Err(e)) => {
                    let e: BoxError = e.into();
                    // hyper-util's own TCP connect timeout (`connect_timeout` split among the
                    // host's addresses) is the same limit, expired a step inside.
                    Err(if tcp_timed_out(&*e) {
                        Box::new(ConnectTimedOut)
                    } else {
                        e
                    })
                }
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

/// Whether `error`'s chain holds hyper-util's TCP connect timeout: a timed-out `io::Error`
/// around tokio's `Elapsed` (not the kernel's own `ETIMEDOUT`, which says nothing of our limit).
fn tcp_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<tokio::time::error::Elapsed>())
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A new connection was not ready by its connect deadline ([`Bounded`]). The call machine
/// names the limit ([`nx_protocol::call::Call::connect_timed_out`]).
#[derive(Debug)]
pub(crate) struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection was not ready by the connect deadline")
    }
}

impl std::error::Error for ConnectTimedOut {}

/// `target` with its port written out.
fn with_port(target: &Uri) -> Result<Uri, BoxError> {
    let https = target.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = target.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = target.host().ok_or("the URL has no host")?;
    let scheme = if https { "https" } else { "http" };
    Ok(Uri::try_from(format!("{scheme}://{host}:{port}/"))?)
}

/// A tunnel that could not be set up, naming the proxy (never its credentials).
#[derive(Debug)]
struct ProxyError {
    proxy: String,
    source: BoxError,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "through the proxy {}: {}", self.proxy, self.source)
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A connector as hyper-util holds it: behind one `Arc` (inside [`Bounded`], which reads the
/// attempt's connect deadline when a connection is asked for and bounds this one's future).
/// hyper-util's client clones its connector twice for every request, a request on a pooled
/// connection too (the client itself, and the connect future it races against the pool's
/// checkout), and drops both clones; `HttpsConnector<Connector>` holds four `Arc`s. Each clone
/// and drop is an atomic on a counter all worker threads share, so its cache line moves between
/// cores on every request: 16 such atomics per call, against 4 through one `Arc` (issue 20).
#[derive(Debug)]
pub(crate) struct Shared<C>(Arc<C>);

impl<C> Shared<C> {
    pub(crate) fn new(connector: C) -> Self {
        Self(Arc::new(connector))
    }
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<C> Service<Uri> for Shared<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    /// Always ready: the clone that connects is made ready in [`Shared::call`]'s future.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Connects with a clone of the connector (a new connection, not a pooled one: rare).
    fn call(&mut self, target: Uri) -> Self::Future {
        let mut connector = C::clone(&self.0);
        Box::pin(async move {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(target).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector whose connections never come.
    #[derive(Clone, Debug)]
    struct Never;

    impl Service<Uri> for Never {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Pending<Result<(), BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::pending()
        }
    }

    #[tokio::test]
    async fn a_connection_not_ready_by_the_attempts_deadline_times_out() {
        let target: Uri = "https://127.0.0.1:9/".parse().unwrap();
        let ms = Duration::from_millis;
        // The attempt's deadline, not the connector's own `connect_timeout`.
        let mut bounded = Bounded::new(Never, Duration::from_secs(60));
        let started = Instant::now();
        let connecting = polling(started + ms(50), &mut false, || {
            bounded.call(target.clone())
        });
        let result = connecting.await;
        assert!(result.unwrap_err().is::<ConnectTimedOut>());
        assert!((ms(50)..ms(5000)).contains(&started.elapsed()));
        // No attempt's deadline in scope: `connect_timeout` from the call.
        let mut bounded = Bounded::new(Never, ms(50));
        let started = Instant::now();
        assert!(
            bounded
                .call(target)
                .await
                .unwrap_err()
                .is::<ConnectTimedOut>()
        );
        assert!((ms(50)..ms(5000)).contains(&started.elapsed()));
    }

    #[tokio::test]
    async fn hyper_utils_tcp_timeout_is_the_connect_limit_the_kernels_is_not() {
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        let hyper_util = std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed);
        let wrapped: BoxError = Box::new(ProxyError {
            proxy: "http://127.0.0.1:1".into(),
            source: Box::new(hyper_util),
        });
        assert!(tcp_timed_out(&*wrapped));
        let kernel = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert!(!tcp_timed_out(&kernel));
    }

    /// A connector that must be made ready before each call, counting the copies that
    /// connect.
    #[derive(Clone, Default)]
    struct Strict {
        ready: bool,
        calls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Service<Uri> for Strict {
        type Response = Uri;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Uri, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, target: Uri) -> Self::Future {
            assert!(self.ready, "called before poll_ready");
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::future::ready(Ok(target))
        }
    }

    #[tokio::test]
    async fn a_shared_connector_is_one_arc_and_connects_through_a_ready_copy() {
        let strict = Strict::default();
        let calls = strict.calls.clone();
        let shared = Shared::new(strict);
        let mut copy = shared.clone();
        assert!(
            Arc::ptr_eq(&shared.0, &copy.0),
            "a clone shares the connector, never copies it"
        );
        let target: Uri = "http://127.0.0.1:9/".parse().unwrap();
        std::future::poll_fn(|cx| copy.poll_ready(cx))
            .await
            .unwrap();
        assert_eq!(copy.call(target.clone()).await.unwrap(), target);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(
            !shared.0.ready,
            "the shared connector itself is never called"
        );
    }

    #[tokio::test]
    async fn a_shared_connector_inside_bounded_keeps_the_attempts_deadline() {
        let target: Uri = "https://127.0.0.1:9/".parse().unwrap();
        let ms = Duration::from_millis;
        let mut bounded = Bounded::new(Shared::new(Never), Duration::from_secs(60));
        let started = Instant::now();
        let connecting = polling(started + ms(50), &mut false, || {
            bounded.call(target.clone())
        });
        assert!(connecting.await.unwrap_err().is::<ConnectTimedOut>());
        assert!((ms(50)..ms(5000)).contains(&started.elapsed()));
    }

    #[tokio::test]
    async fn a_poll_says_whether_its_request_still_waits_for_a_new_connection() {
        let target: Uri = "https://127.0.0.1:9/".parse().unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // A connection that never comes, polled inside the request's poll: waiting.
        let mut bounded = Bounded::new(Never, Duration::from_secs(60));
        let mut waiting = false;
        let mut connecting = polling(far, &mut waiting, || bounded.call(target.clone()));
        assert!(!waiting, "asked for, not yet polled");
        let polled = polling(far, &mut waiting, || connecting.as_mut().poll(&mut cx));
        assert!(polled.is_pending() && waiting);
        // The same connection polled elsewhere (hyper finishing it in the background) says
        // nothing to a request; a poll that polls no connection is not waiting.
        assert!(connecting.as_mut().poll(&mut cx).is_pending());
        assert!(!polling(far, &mut waiting, || false) && !waiting);
        // A connection that is ready at once: not waiting.
        let mut ready = Bounded::new(Strict::default(), Duration::from_secs(60));
        std::future::poll_fn(|cx| ready.poll_ready(cx))
            .await
            .unwrap();
        let mut connecting = polling(far, &mut waiting, || ready.call(target.clone()));
        let polled = polling(far, &mut waiting, || connecting.as_mut().poll(&mut cx));
        assert!(matches!(polled, Poll::Ready(Ok(_))) && !waiting);
    }

    #[test]
    fn the_tunnel_target_always_names_its_port() {
        let uri = |u: &str| u.parse::<Uri>().unwrap();
        assert_eq!(
            with_port(&uri("http://a.b/x?q")).unwrap(),
            uri("http://a.b:80/")
        );
        assert_eq!(
            with_port(&uri("https://a.b/x")).unwrap(),
            uri("https://a.b:443/")
        );
        assert_eq!(
            with_port(&uri("https://[::1]:9/")).unwrap(),
            uri("https://[::1]:9/")
        );
    }
}
