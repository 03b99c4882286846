//! Name resolution without a thread per request, within the attempt's connect deadline.
//!
//! ureq 3.5's default resolver looks the host up on every request, before it checks its
//! connection pool, and when any timeout applies (ours always does) it runs each lookup on a new
//! thread so it can stop waiting: a thread per request, even for an IP literal on a pooled
//! connection (BENCHMARKS.md, item 3). This resolver answers IP literals at once and keeps names
//! for a minute, so lookups (and their threads) happen only when a name is new or stale.
//!
//! It uses ureq's `unversioned` resolver API, which may change in a minor release of ureq; the
//! workspace requires `ureq = "~3.5"` (3.5.x only; see the root `Cargo.toml`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::Uri;
use ureq::config::Config;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up name is reused.
const TTL: Duration = Duration::from_secs(60);

/// At most this many names are kept; past it the cache starts over.
const MAX_NAMES: usize = 64;

/// The IP literal this thread resolved last, as its URL wrote it: every request of a client
/// names the same one or two hosts, and reading the address again from the text (host, port)
/// costs about as much as the rest of resolving.
#[derive(Debug, Default)]
struct LastLiteral {
    authority: String,
    default_port: Option<u16>,
    addr: Option<SocketAddr>,
}

impl LastLiteral {
    /// The address of `authority` under a scheme whose port is `default_port`, if it is the last.
    fn get(&self, authority: &str, default_port: Option<u16>) -> Option<SocketAddr> {
        self.addr
            .filter(|_| self.default_port == default_port && self.authority == authority)
    }

    fn set(&mut self, authority: &str, default_port: Option<u16>, addr: SocketAddr) {
        authority.clone_into(&mut self.authority);
        self.default_port = default_port;
        self.addr = Some(addr);
    }
}

thread_local! {
    static LAST_LITERAL: RefCell<LastLiteral> = RefCell::default();
}

/// IP literals at once, names from a short-lived cache, `lookup` (ureq's default resolver)
/// otherwise.
#[derive(Debug, Default)]
pub(crate) struct CachingResolver<L = DefaultResolver> {
    lookup: L,
    names: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl CachingResolver {
    /// Over ureq's default resolver.
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl<L: Resolver> Resolver for CachingResolver<L> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let default_port = match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let literal = |addr| {
            let mut addrs = self.empty();
            addrs.push(addr);
            Ok(addrs)
        };
        if let Some(addr) =
            LAST_LITERAL.with_borrow(|last| last.get(authority.as_str(), default_port))
        {
            return literal(addr);
        }
        let Some(port) = authority.port_u16().or(default_port) else {
            return self.lookup.resolve(uri, config, timeout);
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            LAST_LITERAL.with_borrow_mut(|last| last.set(authority.as_str(), default_port, addr));
            return literal(addr);
        }
        let key = format!("{host}:{port}");
        let cached = {
            let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            names
                .get(&key)
                .filter(|(at, _)| at.elapsed() < TTL)
                .map(|(_, addrs)| addrs.clone())
        };
        if let Some(addrs) = cached {
            return Ok(addrs);
        }
        // A lookup is part of making the connection: within its deadline.
        let timeout = crate::deadline::within_connect(timeout, Instant::now());
        let addrs = self
            .lookup
            .resolve(uri, config, timeout)
            .map_err(crate::deadline::connect_error)?;
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.len() >= MAX_NAMES {
            names.clear();
        }
        names.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(5),
            ..NextTimeout::default()
        }
    }

    #[test]
    fn ip_literals_resolve_to_themselves() {
        let resolver = CachingResolver::new();
        let config = Config::default();
        for (uri, expected) in [
            ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
            ("https://127.0.0.1/x", "127.0.0.1:443"),
            ("http://[::1]:9090/", "[::1]:9090"),
            // The thread's last literal is reused only for the same authority and scheme.
            ("https://127.0.0.1/y", "127.0.0.1:443"),
            ("http://127.0.0.1/y", "127.0.0.1:80"),
            ("http://127.0.0.1/z", "127.0.0.1:80"),
            ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
            ("http://127.0.0.2:8080/", "127.0.0.2:8080"),
            ("http://[::1]:8080/", "[::1]:8080"),
        ] {
            let uri: Uri = uri.parse().unwrap();
            let addrs = resolver.resolve(&uri, &config, timeout()).unwrap();
            assert_eq!(
                addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                [expected],
                "{uri}"
            );
        }
        assert!(
            resolver.names.lock().unwrap().is_empty(),
            "literals are not cached"
        );
    }

    /// Answers every name with 127.0.0.1 and counts the lookups, so the cache is tested
    /// without asking the machine's resolver.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Resolver for Counting {
        fn resolve(
            &self,
            uri: &Uri,
            _: &Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut addrs = self.empty();
            let port = uri.port_u16().unwrap_or(80);
            addrs.push(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
            Ok(addrs)
        }
    }

    #[test]
    fn names_are_cached_after_one_lookup() {
        let resolver = CachingResolver::<Counting>::default();
        let lookups = || resolver.lookup.0.load(std::sync::atomic::Ordering::Relaxed);
        let uri: Uri = "http://media.example:1234/".parse().unwrap();
        let first = resolver
            .resolve(&uri, &Config::default(), timeout())
            .unwrap();
        assert_eq!(
            first.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1:1234"]
        );
        assert_eq!((lookups(), resolver.names.lock().unwrap().len()), (1, 1));
        let second = resolver
            .resolve(&uri, &Config::default(), timeout())
            .unwrap();
        assert_eq!(first.as_ref(), second.as_ref());
        assert_eq!(lookups(), 1, "the second resolve is served from the cache");
        let other: Uri = "http://media.example:1235/".parse().unwrap();
        resolver
            .resolve(&other, &Config::default(), timeout())
            .unwrap();
        assert_eq!(lookups(), 2, "the port is part of the key");
    }
}
