//! What both transports share that is not I/O: their configuration and their error type.
//!
//! `nx-async` and `nx-blocking` re-export these, so a caller matches the same error kinds and
//! sets the same options whichever transport they use.

use std::time::Duration;

use crate::download::IntegrityError;
use crate::error::{InvalidInput, ResponseError};
use crate::operation::BaseUrl;
use crate::policy::clock::ClockError;
use crate::policy::retry::RetryPolicy;
use crate::secret::Credentials;

/// NXCloud's production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api2.nxcloud.com";
/// Environment variable for the access key.
pub const ENV_ACCESS_KEY: &str = "NXCLOUD_ACCESS_KEY";
/// Environment variable for the access secret.
pub const ENV_ACCESS_SECRET: &str = "NXCLOUD_ACCESS_SECRET";
/// Environment variable for the base URL.
pub const ENV_BASE_URL: &str = "NXCLOUD_BASE_URL";

/// A transport's settings. Build one with [`ClientConfig::new`] or [`ClientConfig::from_env`]
/// and adjust the public fields; the transports' builders wrap it.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where NXCloud is (default [`DEFAULT_BASE_URL`]).
    pub base_url: BaseUrl,
    /// The account's key pair.
    pub credentials: Credentials,
    /// Limit for establishing a connection (TCP + TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for one attempt of an API call, from sending to the last byte of the answer; for
    /// media transfers, the longest the transfer may go without a byte moving. Default 30 s.
    pub request_timeout: Duration,
    /// Limit for a whole API call including retries and their waits. Default 120 s.
    pub overall_timeout: Duration,
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
    /// Root certificates (DER) trusted besides the built-in ones, e.g. a private CA.
    pub extra_roots_der: Vec<Vec<u8>>,
}

impl ClientConfig {
    /// Settings for `credentials` against the production base URL, with the defaults above.
    pub fn new(credentials: Credentials, user_agent: impl Into<String>) -> Self {
        Self {
            base_url: BaseUrl::parse(DEFAULT_BASE_URL).unwrap_or_else(|_| unreachable!()),
            credentials,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            overall_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            max_answer_bytes: 1024 * 1024,
            max_download_bytes: 100 * 1024 * 1024,
            user_agent: user_agent.into(),
            allow_insecure_http: false,
            extra_roots_der: Vec::new(),
        }
    }

    /// Settings from `NXCLOUD_ACCESS_KEY`, `NXCLOUD_ACCESS_SECRET` and (optional)
    /// `NXCLOUD_BASE_URL`, read through `lookup` (pass `|k| std::env::var(k).ok()`).
    ///
    /// ```
    /// use nx_protocol::client::ClientConfig;
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
        let missing = |name: &'static str| Error::Config(format!("{name} is not set"));
        let key = lookup(ENV_ACCESS_KEY)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(ENV_ACCESS_KEY))?;
        let secret = lookup(ENV_ACCESS_SECRET)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(ENV_ACCESS_SECRET))?;
        let mut config = Self::new(Credentials::new(key, secret), user_agent);
        if let Some(url) = lookup(ENV_BASE_URL).filter(|v| !v.is_empty()) {
            config.base_url = BaseUrl::parse(&url)?;
        }
        Ok(config)
    }

    /// Refuses settings that would send credentials in clear text: plain `http` is allowed for
    /// loopback hosts, or when [`ClientConfig::allow_insecure_http`] is set.
    pub fn check(&self) -> Result<(), Error> {
        if !self.base_url.is_https() && !self.base_url.is_loopback() && !self.allow_insecure_http {
            return Err(Error::Config(format!(
                "base URL {} is plain http to a non-loopback host; use https, or allow insecure http explicitly",
                self.base_url
            )));
        }
        Ok(())
    }
}

/// Everything a call can fail with, in kinds a caller can match on. Every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// The server answered with an error (an NXCloud code, a Meta error, an HTTP status, or an
    /// answer that is not valid).
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// A limit of the configuration passed.
    #[error(
        "timed out after {after:?} while {during}; the server or network is slow or stalled; retry later or raise the timeout"
    )]
    Timeout {
        /// What was going on.
        during: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// No connection could be made.
    #[error("could not connect to {host}: {source}; check the base URL and the network")]
    Connect {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// TLS failed (certificate, handshake).
    #[error(
        "TLS with {host} failed: {source}; check the certificate (a private CA must be added as a root)"
    )]
    Tls {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The connection broke after the request was sent (reset, truncated answer, protocol error).
    #[error("the connection failed during the call: {source}; retry")]
    Transport {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A JSON answer was larger than allowed; it was not buffered.
    #[error(
        "the answer is larger than {limit} bytes and was refused; a JSON answer should be small, so the server is misbehaving (raise max_answer_bytes only if you expect this)"
    )]
    AnswerTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Downloaded bytes failed a check; nothing was kept at the target path.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// The server rejected our clock and we could not correct it.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Local file or stream I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. "reading /path/to/file".
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The client is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
}

/// A boxed error from the transport's HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// The NXCloud code, when the server answered one.
    pub fn api_code(&self) -> Option<crate::ApiCode> {
        match self {
            Error::Response(r) => r.api_code(),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Error::Response(r) => Some(r.status()),
            _ => None,
        }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Implemented by each transport's client so the one [`ClientBuilder`] can build it.
pub trait FromConfig: Sized {
    /// The client for these settings.
    fn from_config(config: ClientConfig) -> Result<Self, Error>;
}

/// The builder both transports hand out from `Client::builder()`: settings here, the client's
/// own construction in [`FromConfig`].
#[derive(Debug)]
pub struct ClientBuilder<C> {
    credentials: Option<Credentials>,
    base_url: Option<String>,
    user_agent: String,
    edits: Vec<Edit>,
    client: std::marker::PhantomData<fn() -> C>,
}

#[derive(Debug)]
enum Edit {
    ConnectTimeout(Duration),
    RequestTimeout(Duration),
    OverallTimeout(Duration),
    Retry(RetryPolicy),
    MaxAnswerBytes(u64),
    MaxDownloadBytes(u64),
    AllowInsecureHttp(bool),
    RootCertificateDer(Vec<u8>),
}

impl<C: FromConfig> ClientBuilder<C> {
    /// A builder whose `User-Agent` is `user_agent` (the transport's name and version).
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            credentials: None,
            base_url: None,
            user_agent: user_agent.into(),
            edits: Vec::new(),
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

    /// See [`ClientConfig::connect_timeout`].
    pub fn connect_timeout(self, d: Duration) -> Self {
        self.edit(Edit::ConnectTimeout(d))
    }

    /// See [`ClientConfig::request_timeout`].
    pub fn request_timeout(self, d: Duration) -> Self {
        self.edit(Edit::RequestTimeout(d))
    }

    /// See [`ClientConfig::overall_timeout`].
    pub fn overall_timeout(self, d: Duration) -> Self {
        self.edit(Edit::OverallTimeout(d))
    }

    /// See [`ClientConfig::retry`].
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.edit(Edit::Retry(policy))
    }

    /// See [`ClientConfig::max_answer_bytes`].
    pub fn max_answer_bytes(self, n: u64) -> Self {
        self.edit(Edit::MaxAnswerBytes(n))
    }

    /// See [`ClientConfig::max_download_bytes`].
    pub fn max_download_bytes(self, n: u64) -> Self {
        self.edit(Edit::MaxDownloadBytes(n))
    }

    /// See [`ClientConfig::allow_insecure_http`].
    pub fn allow_insecure_http(self, allow: bool) -> Self {
        self.edit(Edit::AllowInsecureHttp(allow))
    }

    /// Trusts one more root certificate (DER), e.g. a private CA. The built-in roots stay.
    pub fn add_root_certificate_der(self, der: impl Into<Vec<u8>>) -> Self {
        self.edit(Edit::RootCertificateDer(der.into()))
    }

    fn edit(mut self, edit: Edit) -> Self {
        self.edits.push(edit);
        self
    }

    /// The settings, reading the environment for what was not given.
    pub fn config(self) -> Result<ClientConfig, Error> {
        self.config_with_env(|k| std::env::var(k).ok())
    }

    /// The settings, with `lookup` standing in for the environment.
    pub fn config_with_env(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig, Error> {
        let mut config = match self.credentials {
            Some(credentials) => ClientConfig::new(credentials, self.user_agent),
            None => ClientConfig::from_env(&lookup, self.user_agent)?,
        };
        if let Some(url) = self
            .base_url
            .or_else(|| lookup(ENV_BASE_URL).filter(|v| !v.is_empty()))
        {
            config.base_url = BaseUrl::parse(&url)?;
        }
        for edit in self.edits {
            match edit {
                Edit::ConnectTimeout(d) => config.connect_timeout = d,
                Edit::RequestTimeout(d) => config.request_timeout = d,
                Edit::OverallTimeout(d) => config.overall_timeout = d,
                Edit::Retry(p) => config.retry = p,
                Edit::MaxAnswerBytes(n) => config.max_answer_bytes = n,
                Edit::MaxDownloadBytes(n) => config.max_download_bytes = n,
                Edit::AllowInsecureHttp(b) => config.allow_insecure_http = b,
                Edit::RootCertificateDer(der) => config.extra_roots_der.push(der),
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Builds the client.
    pub fn build(self) -> Result<C, Error> {
        C::from_config(self.config()?)
    }
}
