//! The settings of a client, whatever its transport: [`TransportConfig`] (timeouts, retries,
//! limits, TLS, proxies), [`ClientConfig`] and [`OnPremConfig`], their checks, and the builders
//! both transports hand out.
//!
//! `nx-async` and `nx-blocking` re-export these, so a caller sets the same options whichever
//! transport they use.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::onprem::Token;
use crate::operation::BaseUrl;
use crate::policy::retry::RetryPolicy;
use crate::proxy::{ProxyConfig, ProxyRules, ProxyUrl};
use crate::secret::{AccessSecret, Credentials};

/// NXCloud's production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api2.nxcloud.com";
/// Environment variable for the access key.
pub const ENV_ACCESS_KEY: &str = "NXCLOUD_ACCESS_KEY";
/// Environment variable for the access secret.
pub const ENV_ACCESS_SECRET: &str = "NXCLOUD_ACCESS_SECRET";
/// Environment variable for the base URL.
pub const ENV_BASE_URL: &str = "NXCLOUD_BASE_URL";
/// Environment variable for the WhatsApp application's `appkey` (used by sends).
pub const ENV_APPKEY: &str = "NXCLOUD_APPKEY";

/// Which certificates a client trusts besides [`TransportConfig::extra_roots_der`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootStore {
    /// Mozilla's roots as the `webpki-roots` crate ships them: the same on every machine, and
    /// nothing read from disk. The default.
    #[default]
    Webpki,
    /// The operating system's store, read when the client is built (`rustls-native-certs`):
    /// what a company adds there (an internal CA, a TLS-inspecting proxy's root) is trusted.
    /// The transports need their `native-roots` feature for it.
    ///
    /// Why `rustls-native-certs` rather than `rustls-platform-verifier`: it gives certificates,
    /// which go into the same root list both transports already build (with the extra roots
    /// beside them); the platform verifier replaces the verifier instead, and ureq's mode for it
    /// takes no extra roots, so a CA bundle and the OS store could not be combined.
    Native,
}

/// The default [`TransportConfig::min_transfer_rate`]: 256 KiB/s.
pub const DEFAULT_MIN_TRANSFER_RATE: u64 = 256 * 1024;

/// Settings every client has, whatever API it speaks: timeouts, retries, limits, TLS roots.
///
/// `Debug` shows the extra roots as a count, not their bytes.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Limit for making a new connection: everything before the request's first byte can be
    /// written (resolving the host, TCP, a proxy's `CONNECT` request and its answer, the TLS
    /// handshake). A peer or proxy that stalls any of them fails the attempt at this limit with
    /// an [`Error::Timeout`] in [`Phase::Connect`](crate::call::Phase::Connect) (retried like a
    /// refused connection: nothing was sent). It runs from the attempt's start, within
    /// `request_timeout` and the call's deadline; a reused (pooled) connection does not
    /// connect. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for one attempt of an API call, from sending to the last byte of the answer; for
    /// a media transfer (an upload or a download), the limit for the answer's head once the
    /// request was sent, and for an error answer's body. Default 30 s.
    pub request_timeout: Duration,
    /// Limit for a whole call: every attempt, retry wait and transfer. No wait is begun that
    /// would end past it, and an attempt running at it is cut there, ending with
    /// [`Error::Timeout`]. A media transfer gets [`TransportConfig::min_transfer_rate`] on top.
    /// Default 120 s.
    pub overall_timeout: Duration,
    /// The time a media transfer may take beyond `overall_timeout`: its size at this many bytes
    /// per second (an upload's length; for a download, its size cap, since its length is known
    /// only once it started). Default 256 KiB/s (2 Mbit/s), so a 100 MiB file may take 120 s +
    /// 400 s and any transfer sustaining that rate fits. `None`: `overall_timeout` bounds
    /// transfers too (the builders' `time_limit` sets this).
    pub min_transfer_rate: Option<u64>,
    /// Stalled-stream protection for media bodies (uploads and downloads): a body moving slower
    /// than its floor for its grace period fails. Default 20 s below 1 B/s (aws-sdk-rust's);
    /// `None` turns it off (the deadlines above still hold).
    pub stalled_stream: Option<crate::call::StallProtection>,
    /// Retry and backoff policy.
    pub retry: RetryPolicy,
    /// Largest JSON answer accepted; a larger one is refused without buffering it. Default 1 MiB.
    pub max_answer_bytes: u64,
    /// Largest media download accepted. Default 100 MiB (the largest media kind, documents).
    pub max_download_bytes: u64,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Allow plain `http://` to a host that is not loopback. Off: credentials and media would
    /// travel unencrypted.
    pub allow_insecure_http: bool,
    /// Root certificates (DER) trusted besides those of [`TransportConfig::root_store`], e.g. a
    /// private CA.
    pub extra_roots_der: Vec<Vec<u8>>,
    /// Where the built-in roots come from. Default [`RootStore::Webpki`].
    pub root_store: RootStore,
    /// Which proxy to tunnel through. Default: the environment, read when the client is built
    /// ([`ProxyConfig::Environment`], see [`crate::proxy`]).
    pub proxy: ProxyConfig,
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("overall_timeout", &self.overall_timeout)
            .field("retry", &self.retry)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("max_download_bytes", &self.max_download_bytes)
            .field("user_agent", &self.user_agent)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("extra_roots", &self.extra_roots_der.len())
            .field("root_store", &self.root_store)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl TransportConfig {
    /// The defaults above, sending `user_agent`.
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            overall_timeout: Duration::from_secs(120),
            min_transfer_rate: Some(DEFAULT_MIN_TRANSFER_RATE),
            stalled_stream: Some(crate::call::StallProtection::DEFAULT),
            retry: RetryPolicy::default(),
            max_answer_bytes: 1024 * 1024,
            max_download_bytes: 100 * 1024 * 1024,
            user_agent: user_agent.into(),
            allow_insecure_http: false,
            extra_roots_der: Vec::new(),
            root_store: RootStore::Webpki,
            proxy: ProxyConfig::Environment,
        }
    }

    /// The `User-Agent` header, checked once when a client is built, so that every request can
    /// carry it without validating it again.
    ///
    /// ```
    /// use nx_protocol::config::TransportConfig;
    /// assert_eq!(TransportConfig::new("app/1.0").user_agent_header().unwrap(), "app/1.0");
    /// let err = TransportConfig::new("app\n1.0").user_agent_header().unwrap_err();
    /// assert!(err.to_string().contains("User-Agent"), "{err}");
    /// ```
    pub fn user_agent_header(&self) -> Result<http::HeaderValue, Error> {
        http::HeaderValue::from_str(&self.user_agent).map_err(|_| {
            Error::Config(format!(
                "the User-Agent {:?} is not a valid header value (visible ASCII and spaces only)",
                self.user_agent
            ))
        })
    }

    /// Replaces [`ProxyConfig::Environment`] by the rules `lookup` gives, so the settings say
    /// which proxy will be used.
    pub fn resolve_proxy(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if matches!(self.proxy, ProxyConfig::Environment) {
            self.proxy = ProxyConfig::Rules(self.proxy.resolve(lookup)?);
        }
        Ok(())
    }

    /// Refuses a base URL that would send credentials in clear text: plain `http` is allowed
    /// for loopback hosts, or when [`TransportConfig::allow_insecure_http`] is set.
    pub fn check_url(&self, base_url: &BaseUrl) -> Result<(), Error> {
        if !base_url.is_https() && !base_url.is_loopback() && !self.allow_insecure_http {
            return Err(Error::Config(format!(
                "base URL {base_url} is plain http to a non-loopback host; use https, or allow insecure http explicitly"
            )));
        }
        Ok(())
    }
}

/// An NXCloud client's settings. Build one with [`ClientConfig::new`] or
/// [`ClientConfig::from_env`] and adjust the public fields; the transports' builders wrap it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Where NXCloud is (default [`DEFAULT_BASE_URL`]).
    pub base_url: BaseUrl,
    /// The account's key pair.
    pub credentials: Credentials,
    /// The WhatsApp application's `appkey` that message sends carry unless a message names its
    /// own (not a secret: it travels in the signed body). Only sends need it.
    pub appkey: Option<String>,
    /// Timeouts, retries, limits, TLS.
    pub transport: TransportConfig,
}

impl ClientConfig {
    /// Settings for `credentials` against the production base URL, with the defaults of
    /// [`TransportConfig::new`].
    pub fn new(credentials: Credentials, user_agent: impl Into<String>) -> Self {
        Self {
            base_url: BaseUrl::parse(DEFAULT_BASE_URL).unwrap_or_else(|_| unreachable!()),
            credentials,
            appkey: None,
            transport: TransportConfig::new(user_agent),
        }
    }

    /// Settings from `NXCLOUD_ACCESS_KEY`, `NXCLOUD_ACCESS_SECRET` and (optional)
    /// `NXCLOUD_BASE_URL` and `NXCLOUD_APPKEY`, read through `lookup` (pass
    /// `|k| std::env::var(k).ok()`).
    ///
    /// ```
    /// use nx_protocol::config::ClientConfig;
    /// let env = |k: &str| match k {
    ///     "NXCLOUD_ACCESS_KEY" => Some("key".to_owned()),
    ///     "NXCLOUD_ACCESS_SECRET" => Some("secret".to_owned()),
    ///     _ => None,
    /// };
    /// let config = ClientConfig::from_env(env, "my-agent").unwrap();
    /// assert_eq!(config.base_url.as_str(), "https://api2.nxcloud.com");
    /// ```
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
        user_agent: impl Into<String>,
    ) -> Result<Self, Error> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Config(format!("{name} is not set")))
        };
        let mut config = Self::new(
            Credentials::new(get(ENV_ACCESS_KEY)?, get(ENV_ACCESS_SECRET)?),
            user_agent,
        );
        if let Some(url) = lookup(ENV_BASE_URL).filter(|v| !v.is_empty()) {
            config.base_url = BaseUrl::parse(&url)?;
        }
        config.appkey = lookup(ENV_APPKEY).filter(|v| !v.is_empty());
        Ok(config)
    }

    /// Refuses settings that would send credentials in clear text (see
    /// [`TransportConfig::check_url`]).
    pub fn check(&self) -> Result<(), Error> {
        self.transport.check_url(&self.base_url)
    }
}

/// How an On-Premises client authenticates.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OnPremLogin {
    /// Log in with a user name and password (Basic auth) and renew the token before it
    /// expires or after a 401.
    Password {
        /// The user name.
        username: String,
        /// The password (redacted in `Debug`).
        password: AccessSecret,
    },
    /// Use this token as it is; a 401 is then final, since there is nothing to log in with.
    Token(Token),
}

impl OnPremLogin {
    /// The user name and the password to log in with now: the configured one, or the one a
    /// first login set (`slot` knows). A given token has nothing to log in with: an error.
    pub fn credentials<'a>(
        &'a self,
        slot: &'a crate::onprem::TokenSlot,
    ) -> Result<(&'a str, &'a AccessSecret), Error> {
        match self {
            OnPremLogin::Password { username, password } => {
                Ok((username, slot.login_password(password)))
            }
            OnPremLogin::Token(_) => Err(Error::Config(
                "this client was given a token: it has no user name and password to log in with"
                    .into(),
            )),
        }
    }
}

/// How long before a token's `expires_after` an On-Premises client logs in again, by default.
pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An On-Premises client's settings. Build one with [`OnPremConfig::new`] and adjust the
/// public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OnPremConfig {
    /// The installation's base URL, e.g. `https://wa.example.internal:9090`.
    pub base_url: BaseUrl,
    /// How to authenticate.
    pub login: OnPremLogin,
    /// How long before a token's `expires_after` to log in again. Default 60 s.
    pub token_refresh_margin: Duration,
    /// Timeouts, retries, limits, TLS (add the installation's private CA here).
    pub transport: TransportConfig,
}

impl OnPremConfig {
    /// Settings for `base_url` with `login` and the defaults of [`TransportConfig::new`].
    pub fn new(base_url: BaseUrl, login: OnPremLogin, user_agent: impl Into<String>) -> Self {
        Self {
            base_url,
            login,
            token_refresh_margin: DEFAULT_TOKEN_REFRESH_MARGIN,
            transport: TransportConfig::new(user_agent),
        }
    }

    /// Refuses settings that would send credentials in clear text (see
    /// [`TransportConfig::check_url`]).
    pub fn check(&self) -> Result<(), Error> {
        self.transport.check_url(&self.base_url)
    }
}

/// Implemented by each transport's clients so the builders can build them from settings.
pub trait FromConfig<Config>: Sized {
    /// The client for these settings.
    fn from_config(config: Config) -> Result<Self, Error>;
}

/// Setters for the [`TransportConfig`] part of a builder, shared by both builders.
macro_rules! transport_setters {
    () => {
        /// The limit for making a new connection: resolving, TCP, a proxy's `CONNECT` and the
        /// TLS handshake, up to the request's first byte (default 10 s). See
        /// [`TransportConfig::connect_timeout`].
        pub fn connect_timeout(mut self, d: Duration) -> Self {
            self.transport.connect_timeout = d;
            self
        }

        /// See [`TransportConfig::request_timeout`].
        pub fn request_timeout(mut self, d: Duration) -> Self {
            self.transport.request_timeout = d;
            self
        }

        /// See [`TransportConfig::overall_timeout`].
        pub fn overall_timeout(mut self, d: Duration) -> Self {
            self.transport.overall_timeout = d;
            self
        }

        /// See [`TransportConfig::min_transfer_rate`].
        pub fn min_transfer_rate(mut self, bytes_per_sec: Option<u64>) -> Self {
            self.transport.min_transfer_rate = bytes_per_sec;
            self
        }

        /// See [`TransportConfig::stalled_stream`].
        pub fn stalled_stream(mut self, protection: Option<crate::call::StallProtection>) -> Self {
            self.transport.stalled_stream = protection;
            self
        }

        /// Limits a whole call to `d`, retries and transfers included
        /// ([`TransportConfig::overall_timeout`], no [`TransportConfig::min_transfer_rate`]),
        /// and each attempt's connect and answer limits to at most `d` as well.
        pub fn time_limit(mut self, d: Duration) -> Self {
            self.transport.overall_timeout = d;
            self.transport.min_transfer_rate = None;
            self.transport.connect_timeout = self.transport.connect_timeout.min(d);
            self.transport.request_timeout = self.transport.request_timeout.min(d);
            self
        }

        /// See [`TransportConfig::retry`].
        pub fn retry(mut self, policy: RetryPolicy) -> Self {
            self.transport.retry = policy;
            self
        }

        /// See [`TransportConfig::max_answer_bytes`].
        pub fn max_answer_bytes(mut self, n: u64) -> Self {
            self.transport.max_answer_bytes = n;
            self
        }

        /// See [`TransportConfig::max_download_bytes`].
        pub fn max_download_bytes(mut self, n: u64) -> Self {
            self.transport.max_download_bytes = n;
            self
        }

        /// See [`TransportConfig::allow_insecure_http`].
        pub fn allow_insecure_http(mut self, allow: bool) -> Self {
            self.transport.allow_insecure_http = allow;
            self
        }

        /// Trusts one more root certificate (DER), e.g. a private CA. The built-in roots stay;
        /// verification is never turned off.
        pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
            self.transport.extra_roots_der.push(der.into());
            self
        }

        /// Adjusts the [`TransportConfig`] directly, e.g. with settings a command line read.
        pub fn transport(mut self, edit: impl FnOnce(&mut TransportConfig)) -> Self {
            edit(&mut self.transport);
            self
        }

        /// See [`TransportConfig::root_store`].
        pub fn root_store(mut self, store: RootStore) -> Self {
            self.transport.root_store = store;
            self
        }

        /// Tunnels every connection through this HTTP proxy (`http://[user:password@]host[:port]`,
        /// HTTP CONNECT), whatever the environment says. The credentials are kept as secrets.
        pub fn proxy(mut self, url: &str) -> Result<Self, Error> {
            self.transport.proxy = ProxyConfig::Rules(ProxyRules::all(ProxyUrl::parse(url)?));
            Ok(self)
        }

        /// See [`TransportConfig::proxy`]: [`ProxyConfig::Off`] turns proxies off, even those
        /// of the environment.
        pub fn proxy_config(mut self, proxy: ProxyConfig) -> Self {
            self.transport.proxy = proxy;
            self
        }

        /// Trusts the root certificates in a PEM file's contents. Refuses text that holds no
        /// certificate.
        pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
            self.transport
                .extra_roots_der
                .extend(certificates_from_pem(pem)?);
            Ok(self)
        }
    };
}

/// The DER certificates in PEM text.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("root certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(
            "root certificate PEM holds no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// The operating system's roots as a transport loaded them (with `rustls-native-certs`): refused
/// when none was found, since every https call would then fail with an unknown issuer. Errors
/// beside found certificates (one unreadable file of many) are not fatal, as for curl.
pub fn native_roots<E: std::fmt::Display>(
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    errors: &[E],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, Error> {
    if certs.is_empty() {
        let why = errors
            .first()
            .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
        return Err(Error::Config(format!(
            "no root certificate found in the operating system's store ({why}); use the webpki roots or add a CA bundle"
        )));
    }
    Ok(certs)
}

/// The error of a transport built without its `native-roots` feature when asked for
/// [`RootStore::Native`].
pub fn native_roots_missing(transport: &str) -> Error {
    Error::Config(format!(
        "the operating system's root store needs {transport}'s `native-roots` cargo feature"
    ))
}

/// The NXCloud client builder both transports hand out from `Client::builder()`.
#[derive(Debug)]
pub struct ClientBuilder<C> {
    credentials: Option<Credentials>,
    base_url: Option<String>,
    appkey: Option<String>,
    transport: TransportConfig,
    client: std::marker::PhantomData<fn() -> C>,
}

impl<C: FromConfig<ClientConfig>> ClientBuilder<C> {
    /// A builder whose `User-Agent` is `user_agent` (the transport's name and version).
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            credentials: None,
            base_url: None,
            appkey: None,
            transport: TransportConfig::new(user_agent),
            client: std::marker::PhantomData,
        }
    }

    /// The account's access key and secret. Without this call they come from
    /// `NXCLOUD_ACCESS_KEY` / `NXCLOUD_ACCESS_SECRET`.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        access_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(access_key, access_secret));
        self
    }

    /// The base URL. Without this call: `NXCLOUD_BASE_URL`, else [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The WhatsApp application's `appkey` for message sends. Without this call it comes from
    /// `NXCLOUD_APPKEY` (and a send without one must name its own).
    pub fn appkey(mut self, appkey: impl Into<String>) -> Self {
        self.appkey = Some(appkey.into());
        self
    }

    transport_setters!();

    /// The settings, reading the environment for what was not given.
    pub fn config(self) -> Result<ClientConfig, Error> {
        self.config_with_env(|k| std::env::var(k).ok())
    }

    /// The settings, with `lookup` standing in for the environment.
    pub fn config_with_env(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig, Error> {
        let user_agent = self.transport.user_agent.clone();
        let mut config = match self.credentials {
            Some(credentials) => ClientConfig::new(credentials, user_agent),
            None => ClientConfig::from_env(&lookup, user_agent)?,
        };
        if let Some(url) = self
            .base_url
            .or_else(|| lookup(ENV_BASE_URL).filter(|v| !v.is_empty()))
        {
            config.base_url = BaseUrl::parse(&url)?;
        }
        config.appkey = self
            .appkey
            .or_else(|| lookup(ENV_APPKEY).filter(|v| !v.is_empty()));
        config.transport = self.transport;
        config.transport.resolve_proxy(&lookup)?;
        config.check()?;
        Ok(config)
    }

    /// Builds the client.
    pub fn build(self) -> Result<C, Error> {
        C::from_config(self.config()?)
    }
}

/// Environment variable for the On-Premises base URL.
pub const ENV_ONPREM_URL: &str = "WA_ONPREM_URL";
/// Environment variable for an On-Premises token.
pub const ENV_ONPREM_TOKEN: &str = "WA_ONPREM_TOKEN";

/// The On-Premises client builder both transports hand out from `OnPremClient::builder()`.
#[derive(Debug)]
pub struct OnPremBuilder<C> {
    base_url: Option<String>,
    login: Option<OnPremLogin>,
    token_refresh_margin: Duration,
    transport: TransportConfig,
    client: std::marker::PhantomData<fn() -> C>,
}

impl<C: FromConfig<OnPremConfig>> OnPremBuilder<C> {
    /// A builder whose `User-Agent` is `user_agent`.
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            base_url: None,
            login: None,
            token_refresh_margin: DEFAULT_TOKEN_REFRESH_MARGIN,
            transport: TransportConfig::new(user_agent),
            client: std::marker::PhantomData,
        }
    }

    /// The installation's base URL. Without this call: `WA_ONPREM_URL`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Log in with a user name and password; the token is renewed as needed.
    pub fn password(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.login = Some(OnPremLogin::Password {
            username: username.into(),
            password: AccessSecret::new(password),
        });
        self
    }

    /// Use a token obtained elsewhere. Without this or [`OnPremBuilder::password`]:
    /// `WA_ONPREM_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.login = Some(OnPremLogin::Token(Token::from_parts(token.into(), None)));
        self
    }

    /// How long before expiry to renew the token (default 60 s).
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.token_refresh_margin = margin;
        self
    }

    transport_setters!();

    /// The settings, with `lookup` standing in for the environment.
    pub fn config_with_env(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<OnPremConfig, Error> {
        let env = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let url = self
            .base_url
            .or_else(|| env(ENV_ONPREM_URL))
            .ok_or_else(|| {
                Error::Config(format!(
                    "no On-Premises base URL: set it or {ENV_ONPREM_URL}"
                ))
            })?;
        let login = match self.login {
            Some(login) => login,
            None => OnPremLogin::Token(Token::from_parts(
                env(ENV_ONPREM_TOKEN).ok_or_else(|| {
                    Error::Config(format!("no On-Premises login: give a user name and password, a token, or {ENV_ONPREM_TOKEN}"))
                })?,
                None,
            )),
        };
        let mut config = OnPremConfig::new(BaseUrl::parse(&url)?, login, "");
        config.token_refresh_margin = self.token_refresh_margin;
        config.transport = self.transport;
        config.transport.resolve_proxy(&lookup)?;
        config.check()?;
        Ok(config)
    }

    /// Builds the client, reading the environment for what was not given.
    pub fn build(self) -> Result<C, Error> {
        C::from_config(self.config_with_env(|k| std::env::var(k).ok())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client type that is nothing but its settings (only the builder is under test).
    #[derive(Debug)]
    struct Settings;

    impl FromConfig<ClientConfig> for Settings {
        fn from_config(_: ClientConfig) -> Result<Self, Error> {
            Ok(Settings)
        }
    }

    #[test]
    fn builders_resolve_the_proxy_and_an_explicit_setting_wins() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://10.0.0.1:3128".to_owned()),
            "NO_PROXY" => Some(".internal".to_owned()),
            _ => None,
        };
        let rules = |proxy: &ProxyConfig| match proxy {
            ProxyConfig::Rules(rules) => rules.clone(),
            other => panic!("not resolved: {other:?}"),
        };
        let target = |u: &str| u.parse::<http::Uri>().unwrap();
        let builder = || ClientBuilder::<Settings>::new("t").credentials("k", "s");
        let from_env = rules(&builder().config_with_env(env).unwrap().transport.proxy);
        let via = from_env.proxy_for(&target("https://api2.nxcloud.com/"));
        assert_eq!(via.map(ProxyUrl::port), Some(3128));
        assert!(
            from_env
                .proxy_for(&target("https://wa.internal/"))
                .is_none()
        );

        let explicit = builder().proxy("u:pw@127.0.0.1:8080").unwrap();
        let explicit = rules(&explicit.config_with_env(env).unwrap().transport.proxy);
        let via = explicit.proxy_for(&target("https://wa.internal/")).unwrap();
        assert_eq!((via.port(), via.credentials()), (8080, Some(("u", "pw"))));

        let off = builder()
            .proxy_config(ProxyConfig::Off)
            .config_with_env(env)
            .unwrap();
        assert!(matches!(off.transport.proxy, ProxyConfig::Off));
        let err = builder().proxy("socks5://h:1").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    #[test]
    fn appkey_from_the_builder_else_the_environment() {
        let env = |k: &str| (k == ENV_APPKEY).then(|| "from-env".to_owned());
        let builder = || ClientBuilder::<Settings>::new("t").credentials("k", "s");
        let from_env = builder().config_with_env(env).unwrap();
        assert_eq!(from_env.appkey.as_deref(), Some("from-env"));
        let given = builder().appkey("given").config_with_env(env).unwrap();
        assert_eq!(given.appkey.as_deref(), Some("given"));
        let none = builder().config_with_env(|_| None).unwrap();
        assert_eq!(none.appkey, None);
    }

    #[test]
    fn transport_debug_counts_roots_rather_than_printing_them() {
        let mut config = TransportConfig::new("agent/1");
        config.extra_roots_der = vec![vec![0x30; 1500]; 140];
        let shown = format!("{config:?}");
        assert!(
            shown.contains("allow_insecure_http: false, extra_roots: 140, root_store: "),
            "{shown}"
        );
        assert!(shown.len() < 400, "{} characters: {shown}", shown.len());
    }

    #[test]
    fn time_limit_caps_every_attempt_too() {
        let none = |_: &str| None;
        let built = |limit: u64| {
            ClientBuilder::<Settings>::new("t")
                .credentials("k", "s")
                .time_limit(Duration::from_secs(limit))
                .config_with_env(none)
                .unwrap()
                .transport
        };
        let short = built(2);
        assert_eq!(
            (
                short.overall_timeout,
                short.connect_timeout,
                short.request_timeout
            ),
            (
                Duration::from_secs(2),
                Duration::from_secs(2),
                Duration::from_secs(2)
            )
        );
        let long = built(600);
        let defaults = TransportConfig::new("t");
        assert_eq!(
            (
                long.overall_timeout,
                long.connect_timeout,
                long.request_timeout
            ),
            (
                Duration::from_secs(600),
                defaults.connect_timeout,
                defaults.request_timeout
            )
        );
    }
}
