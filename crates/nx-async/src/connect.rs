//! The connector under TLS: a TCP connection straight to the target, or an HTTP `CONNECT`
//! tunnel through the proxy nx-protocol's [`ProxyRules::proxy_for`] names for it (hyper-util's
//! `Tunnel`). TLS to the target then runs inside the tunnel, so the proxy sees only host and
//! port.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioIo;
use nx_protocol::error::BoxError;
use nx_protocol::proxy::ProxyRules;
use tokio::net::TcpStream;
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

#[cfg(test)]
mod tests {
    use super::*;

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
