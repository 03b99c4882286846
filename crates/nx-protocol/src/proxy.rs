//! Which proxy a request goes through: an explicit proxy, or curl's environment variables, and
//! `NO_PROXY` matching. Both transports ask [`ProxyRules::proxy_for`] for every connection they
//! open; neither decides on its own.
//!
//! Pure: the environment is read through a lookup function the caller passes
//! (`|k| std::env::var(k).ok()`).
//!
//! Our readings, following curl (`man curl`, "ENVIRONMENT"):
//!
//! - an `https` target uses `https_proxy`, else `HTTPS_PROXY`; an `http` target uses
//!   `http_proxy` only (curl ignores an upper-case `HTTP_PROXY`, which a CGI server can set from
//!   a request's `Proxy:` header); either falls back to `all_proxy`, else `ALL_PROXY`. Lower case
//!   is read first; an empty value counts as unset.
//! - a value without a scheme is an `http://` proxy; without a port, port 1080 (curl's default).
//!   Only `http://` proxies are supported (a `socks5://` or `https://` proxy is refused, not
//!   silently bypassed).
//! - `no_proxy` / `NO_PROXY` is a comma-separated list: `*` alone disables every proxy; a name
//!   matches itself and its subdomains (`example.com` matches `www.example.com`, not
//!   `notexample.com`), a leading `.` or `*.` is ignored; an IP address matches itself, an
//!   `ADDR/BITS` block the addresses in it; an entry with `:PORT` matches only that port.
//! - every proxied target, `http` or `https`, goes through an HTTP `CONNECT` tunnel (ureq 3 does
//!   the same), so the proxy never sees a request, its signature headers or the download URL's
//!   query, only the host and port.

use std::fmt;
use std::net::IpAddr;

use crate::error::Error;
use crate::secret::{AccessSecret, REDACTED};

/// The variables an `https` target's proxy is read from, in order.
pub const ENV_HTTPS_PROXY: [&str; 2] = ["https_proxy", "HTTPS_PROXY"];
/// The variable an `http` target's proxy is read from (lower case only, as curl).
pub const ENV_HTTP_PROXY: [&str; 1] = ["http_proxy"];
/// The fallback for either scheme, in order.
pub const ENV_ALL_PROXY: [&str; 2] = ["all_proxy", "ALL_PROXY"];
/// The exceptions, in order.
pub const ENV_NO_PROXY: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// curl's port for a proxy given without one.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// An HTTP proxy, `http://[user:password@]host[:port]`. Its credentials are secrets: `Debug`
/// and `Display` show neither the user name nor the password.
#[derive(Clone)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    credentials: Option<(String, AccessSecret)>,
}

impl ProxyUrl {
    /// Parses `http://[user:password@]host[:port]` (or the same without `http://`). The user
    /// name and password are percent-decoded. An error never repeats the text (it may hold a
    /// password).
    ///
    /// ```
    /// use nx_protocol::proxy::ProxyUrl;
    /// let proxy = ProxyUrl::parse("http://me:p%40ss@10.0.0.1:3128").unwrap();
    /// assert_eq!(proxy.to_string(), "http://10.0.0.1:3128");
    /// assert_eq!(proxy.credentials(), Some(("me", "p@ss")));
    /// assert!(!format!("{proxy:?}").contains("p@ss"));
    /// assert_eq!(ProxyUrl::parse("proxy.internal").unwrap().port(), 1080);
    /// assert!(ProxyUrl::parse("socks5://127.0.0.1:1080").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("proxy URL: {why}"));
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => {
                return Err(bad(
                    "only http:// proxies are supported (HTTP CONNECT); not socks or https",
                ));
            }
            None => text,
        };
        // Nothing after the authority but an optional `/`.
        let authority = match rest.find(['/', '?', '#']) {
            Some(i) if rest[i..] == *"/" => &rest[..i],
            Some(_) => return Err(bad("a proxy URL has no path, query or fragment")),
            None => rest,
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let credentials = userinfo
            .map(|userinfo| {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |part: &str| {
                    percent_encoding::percent_decode_str(part)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the user name or password is not UTF-8"))
                };
                Ok::<_, Error>((decode(user)?, AccessSecret::new(decode(password)?)))
            })
            .transpose()?;
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("no valid host:port"))?;
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad("the port is not a number"))?,
            None => DEFAULT_PROXY_PORT,
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(bad("the host is not a valid name or address"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            credentials,
        })
    }

    /// The proxy's host (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name and password, if any. Only the code that sends `Proxy-Authorization`
    /// should call this.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.expose()))
    }

    /// `host:port` (an IPv6 address in brackets), without credentials: how an error names the
    /// proxy.
    ///
    /// ```
    /// use nx_protocol::proxy::ProxyUrl;
    /// assert_eq!(ProxyUrl::parse("http://me:pw@10.0.0.1:3128").unwrap().authority(), "10.0.0.1:3128");
    /// assert_eq!(ProxyUrl::parse("[::1]:8080").unwrap().authority(), "[::1]:8080");
    /// ```
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `http://host:port`, without credentials: the address to connect to.
    pub fn uri(&self) -> http::Uri {
        http::Uri::try_from(self.to_string()).unwrap_or_else(|_| unreachable!("checked in parse"))
    }

    /// The `Proxy-Authorization` value for the `CONNECT` request (Basic), marked sensitive so
    /// http's `Debug` hides it; `None` without credentials.
    pub fn basic_auth(&self) -> Option<http::HeaderValue> {
        use base64::Engine as _;
        let (user, password) = self.credentials()?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value = http::HeaderValue::try_from(format!("Basic {token}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, split; the host without
/// brackets. `None` if brackets do not close.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.split_once(':') {
        // More than one colon: a bare IPv6 address.
        Some((_, port)) if port.contains(':') => Some((text, None)),
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
}

/// One `NO_PROXY` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Exception {
    /// `*`: every host.
    All,
    /// A name: itself and its subdomains, on `port` or any.
    Domain(String, Option<u16>),
    /// An address block (`ADDR` is `/32` or `/128`), on `port` or any.
    Block(IpAddr, u8, Option<u16>),
}

/// The hosts no proxy is used for (`NO_PROXY`'s syntax, see the [module docs](self)).
///
/// ```
/// use nx_protocol::proxy::NoProxy;
/// let except = NoProxy::parse("example.com, .internal, 10.0.0.0/8, [::1], api.test:8443");
/// assert!(except.matches("www.example.com", 443));
/// assert!(!except.matches("notexample.com", 443));
/// assert!(except.matches("internal", 80) && except.matches("wa.internal", 80));
/// assert!(except.matches("10.1.2.3", 443) && !except.matches("11.0.0.1", 443));
/// assert!(except.matches("::1", 9090));
/// assert!(except.matches("api.test", 8443) && !except.matches("api.test", 443));
/// assert!(NoProxy::parse("*").matches("anything", 1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    exceptions: Vec<Exception>,
}

impl NoProxy {
    /// Reads a comma-separated list. Entries that are none of the accepted forms are skipped
    /// (curl does the same), so one typo does not disable the others.
    pub fn parse(list: &str) -> Self {
        let exceptions = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .filter_map(Self::entry)
            .collect();
        Self { exceptions }
    }

    fn entry(entry: &str) -> Option<Exception> {
        if entry == "*" {
            return Some(Exception::All);
        }
        if let Some((addr, bits)) = entry.split_once('/') {
            let addr: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Exception::Block(addr, bits, None));
        }
        if let Ok(addr) = entry.parse::<IpAddr>() {
            return Some(Exception::Block(addr, full_bits(addr), None));
        }
        let (host, port) = split_host_port(entry)?;
        let port = match port {
            Some(port) => Some(port.parse().ok()?),
            None => None,
        };
        if let Ok(addr) = host.parse::<IpAddr>() {
            return Some(Exception::Block(addr, full_bits(addr), port));
        }
        let name = host
            .strip_prefix("*.")
            .or_else(|| host.strip_prefix('.'))
            .unwrap_or(host)
            .trim_end_matches('.');
        (!name.is_empty()).then(|| Exception::Domain(name.to_ascii_lowercase(), port))
    }

    /// Whether a connection to `host` (a name, or an address without brackets) on `port` goes
    /// without a proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        let addr = host.parse::<IpAddr>().ok();
        let on = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.exceptions.iter().any(|e| match e {
            Exception::All => true,
            Exception::Domain(name, p) => {
                on(p)
                    && addr.is_none()
                    && host.len() >= name.len()
                    && host[host.len() - name.len()..].eq_ignore_ascii_case(name)
                    && (host.len() == name.len()
                        || host.as_bytes()[host.len() - name.len() - 1] == b'.')
            }
            Exception::Block(block, bits, p) => {
                on(p) && addr.is_some_and(|a| within(a, *block, *bits))
            }
        })
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.exceptions.is_empty()
    }
}

fn full_bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// Whether `addr` is in `block/bits` (an IPv4-mapped IPv6 address counts as IPv4).
fn within(addr: IpAddr, block: IpAddr, bits: u8) -> bool {
    let canonical = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    };
    match (canonical(addr), canonical(block)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Resolved proxy settings: the proxy for each scheme, and the exceptions. Start from
/// [`ProxyRules::all`], [`ProxyRules::from_env`] or `default()` (no proxy) and set the fields.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProxyRules {
    /// For `https` targets.
    pub https: Option<ProxyUrl>,
    /// For `http` targets.
    pub http: Option<ProxyUrl>,
    /// Hosts reached directly.
    pub no_proxy: NoProxy,
}

impl ProxyRules {
    /// `proxy` for every target, with no exceptions.
    pub fn all(proxy: ProxyUrl) -> Self {
        Self {
            https: Some(proxy.clone()),
            http: Some(proxy),
            no_proxy: NoProxy::default(),
        }
    }

    /// The rules curl would follow with this environment (see the [module docs](self)). A
    /// proxy variable that is set but not a usable proxy URL is an error naming the variable
    /// (never its value): bypassing a proxy the user asked for would fail in a confusing way.
    ///
    /// ```
    /// use nx_protocol::proxy::ProxyRules;
    /// let env = |k: &str| match k {
    ///     "HTTPS_PROXY" => Some("http://127.0.0.1:3128".to_owned()),
    ///     "NO_PROXY" => Some("wa.internal".to_owned()),
    ///     _ => None,
    /// };
    /// let rules = ProxyRules::from_env(env).unwrap();
    /// let uri = |u: &str| u.parse::<http::Uri>().unwrap();
    /// assert_eq!(rules.proxy_for(&uri("https://api2.nxcloud.com/x")).unwrap().port(), 3128);
    /// assert!(rules.proxy_for(&uri("https://wa.internal:9090/v1")).is_none());
    /// assert!(rules.proxy_for(&uri("http://api2.nxcloud.com/x")).is_none());
    /// ```
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|name| {
                lookup(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*name, v))
            })
        };
        let proxy = |names: &[&'static str]| {
            first(names)
                .or_else(|| first(&ENV_ALL_PROXY))
                .map(|(name, value)| {
                    ProxyUrl::parse(&value).map_err(|e| match e {
                        Error::Config(why) => Error::Config(format!("{name}: {why}")),
                        other => other,
                    })
                })
                .transpose()
        };
        Ok(Self {
            https: proxy(&ENV_HTTPS_PROXY)?,
            http: proxy(&ENV_HTTP_PROXY)?,
            no_proxy: first(&ENV_NO_PROXY)
                .map(|(_, list)| NoProxy::parse(&list))
                .unwrap_or_default(),
        })
    }

    /// Whether no target uses a proxy.
    pub fn is_direct(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The proxy to tunnel a connection to `target` through, or `None` to connect directly.
    pub fn proxy_for(&self, target: &http::Uri) -> Option<&ProxyUrl> {
        let https = target.scheme() == Some(&http::uri::Scheme::HTTPS);
        let proxy = if https { &self.https } else { &self.http }.as_ref()?;
        let host = target.host()?;
        let port = target.port_u16().unwrap_or(if https { 443 } else { 80 });
        (!self.no_proxy.matches(host, port)).then_some(proxy)
    }
}

/// How a client picks its proxy.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// Read the environment when the client is built ([`ProxyRules::from_env`]). The default,
    /// as for curl, reqwest and ureq.
    #[default]
    Environment,
    /// Never use a proxy, whatever the environment says.
    Off,
    /// These rules, ignoring the environment.
    Rules(ProxyRules),
}

impl ProxyConfig {
    /// The proxy a connection to `target` goes through under resolved settings
    /// ([`ProxyConfig::Rules`]; `None` for [`ProxyConfig::Off`], and for
    /// [`ProxyConfig::Environment`], which only a transport can read: the clients resolve it
    /// when they are built, [`crate::config::TransportConfig::resolve_proxy`]).
    pub fn proxy_for(&self, target: &http::Uri) -> Option<&ProxyUrl> {
        match self {
            ProxyConfig::Rules(rules) => rules.proxy_for(target),
            ProxyConfig::Environment | ProxyConfig::Off => None,
        }
    }

    /// The rules to follow, reading the environment through `lookup` for
    /// [`ProxyConfig::Environment`].
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<ProxyRules, Error> {
        match self {
            ProxyConfig::Environment => ProxyRules::from_env(lookup),
            ProxyConfig::Off => Ok(ProxyRules::default()),
            ProxyConfig::Rules(rules) => Ok(rules.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(u: &str) -> http::Uri {
        u.parse().unwrap()
    }

    #[test]
    fn proxy_urls_parse_and_hide_their_credentials() {
        let p = ProxyUrl::parse("HTTP://User:s%3Acret@Proxy.Example:8080/").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials()),
            ("proxy.example", 8080, Some(("User", "s:cret")))
        );
        assert_eq!(p.uri(), uri("http://proxy.example:8080"));
        let auth = p.basic_auth().unwrap();
        assert!(auth.is_sensitive());
        // base64("User:s:cret")
        assert_eq!(auth, "Basic VXNlcjpzOmNyZXQ=");
        for shown in [format!("{p:?}"), p.to_string(), format!("{auth:?}")] {
            assert!(
                !shown.contains("s:cret") && !shown.contains("User"),
                "{shown}"
            );
        }
        let v6 = ProxyUrl::parse("[::1]:3128").unwrap();
        assert_eq!(
            (v6.host(), v6.to_string().as_str()),
            ("::1", "http://[::1]:3128")
        );
        assert_eq!(v6.uri().host(), Some("[::1]"));
        assert!(
            ProxyUrl::parse("127.0.0.1:3128")
                .unwrap()
                .basic_auth()
                .is_none()
        );
        for bad in [
            "https://p:1",
            "socks5h://p:1",
            "http://p:notaport",
            "http://p:1/path",
            "http://:1",
            "http://[::1:1",
            "http://u:pw@bad host:1",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err().to_string();
            assert!(
                !err.contains("pw") && err.contains("proxy URL"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_environment_is_read_as_curl_does() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        // Lower case first; HTTP_PROXY (upper case) is ignored; ALL_PROXY is the fallback.
        let rules = ProxyRules::from_env(env(&[
            ("https_proxy", "http://10.0.0.1:1"),
            ("HTTPS_PROXY", "http://10.0.0.2:2"),
            ("HTTP_PROXY", "http://10.0.0.3:3"),
            ("ALL_PROXY", "http://10.0.0.4:4"),
        ]))
        .unwrap();
        assert_eq!(rules.https.as_ref().unwrap().port(), 1);
        assert_eq!(rules.http.as_ref().unwrap().port(), 4);
        let rules = ProxyRules::from_env(env(&[
            ("http_proxy", "10.0.0.3:3"),
            ("HTTPS_PROXY", ""),
            ("no_proxy", "*"),
        ]))
        .unwrap();
        assert_eq!(rules.http.as_ref().unwrap().port(), 3);
        assert!(rules.https.is_none());
        assert!(rules.proxy_for(&uri("http://a.b/")).is_none(), "no_proxy=*");
        assert!(ProxyRules::from_env(env(&[])).unwrap().is_direct());
        let err = ProxyRules::from_env(env(&[("HTTPS_PROXY", "socks5://u:hidden@h:1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTPS_PROXY") && !err.contains("hidden"),
            "{err}"
        );
    }

    #[test]
    fn no_proxy_matches_names_addresses_and_ports() {
        let rules = ProxyRules {
            https: Some(ProxyUrl::parse("127.0.0.1:3128").unwrap()),
            http: None,
            no_proxy: NoProxy::parse(
                " example.com,*.corp, .lan., 192.168.0.0/16, ::1, [fd00::]/8, 10.0.0.1:8443, bad/99, ",
            ),
        };
        let direct = |u: &str| rules.proxy_for(&uri(u)).is_none();
        assert!(direct("https://example.com/"));
        assert!(direct("https://A.Example.COM/"));
        assert!(direct("https://example.com./"));
        assert!(!direct("https://notexample.com/"));
        assert!(!direct("https://example.com.evil/"));
        assert!(direct("https://corp/") && direct("https://x.y.corp/"));
        assert!(direct("https://lan/") && direct("https://wa.lan/"));
        assert!(direct("https://192.168.4.5/") && !direct("https://192.169.0.1/"));
        assert!(direct("https://[::1]:9090/") && direct("https://[fd12::3]/"));
        assert!(!direct("https://[fe80::1]/"));
        assert!(direct("https://10.0.0.1:8443/") && !direct("https://10.0.0.1/"));
        assert!(direct("https://[::ffff:192.168.1.1]/"), "IPv4-mapped");
        assert!(!direct("https://10.9.9.9/"));
        assert!(direct("http://anything/"), "no http proxy");
        assert_eq!(NoProxy::parse("bad/99, /8, [").exceptions, []);
    }
}
