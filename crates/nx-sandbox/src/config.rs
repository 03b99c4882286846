//! [`SandboxConfig`]: accounts, phones, users, lifetimes, webhook URLs and limits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::loopback::LoopbackUrl;
use crate::text::{is_digits, shown_url};

/// Access key of the demo account of [`SandboxConfig::default`].
pub const DEMO_ACCESS_KEY: &str = "demo-access-key";
/// Secret of the demo account of [`SandboxConfig::default`] (a sandbox-only value).
pub const DEMO_ACCESS_SECRET: &str = "demo-access-secret";
/// The business phone bound to the demo account.
pub const DEMO_BUSINESS_PHONE: &str = "8613800138000";
/// The `appkey` of the demo account's WhatsApp application (mt checks it; a sandbox-only value).
pub const DEMO_APPKEY: &str = "demo-appkey";
/// The customer number inbound simulations use when none is given.
pub const DEMO_CUSTOMER_PHONE: &str = "8613900139000";
/// The On-Premises user of [`SandboxConfig::default`].
pub const DEMO_ONPREM_USER: &str = "admin";
/// The password of [`DEMO_ONPREM_USER`] (a sandbox-only value).
pub const DEMO_ONPREM_PASSWORD: &str = "demo-password";
/// How long a getMedia download URL stays valid by default.
pub const DEFAULT_URL_LIFETIME: Duration = Duration::from_secs(300);
/// How long an On-Premises token stays valid by default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The largest JSON request body accepted by default; larger ones are answered 413.
pub const DEFAULT_MAX_JSON_BODY: usize = 64 * 1024;
/// How much media the sandbox stores at most by default (all files together).
pub const DEFAULT_MAX_STORAGE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// How far `ts` may be from the sandbox clock, in milliseconds (the vendor's 60 s).
pub const TS_WINDOW_MS: u64 = 60_000;
/// The `OSSAccessKeyId` the sandbox puts in its download URLs.
pub const OSS_ACCESS_KEY_ID: &str = "SANDBOXOSSKEYID";
/// The `meta.version` the On-Premises routes answer with.
pub const ONPREM_API_VERSION: &str = "3.0.0.0";

/// An NXCloud account: an access key, its secret and the business phones bound to it.
///
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub(crate) access_key: String,
    pub(crate) secret: String,
    pub(crate) phones: Vec<String>,
    /// The appkeys of the account's WhatsApp applications (mt's `appkey`).
    pub(crate) appkeys: Vec<String>,
}

impl Account {
    /// An account with no bound phone yet.
    pub fn new(access_key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret: secret.into(),
            phones: Vec::new(),
            appkeys: Vec::new(),
        }
    }

    /// The demo account: [`DEMO_ACCESS_KEY`] / [`DEMO_ACCESS_SECRET`], bound to
    /// [`DEMO_BUSINESS_PHONE`], with the application [`DEMO_APPKEY`].
    pub fn demo() -> Self {
        Self::new(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
            .phone(DEMO_BUSINESS_PHONE)
            .appkey(DEMO_APPKEY)
    }

    /// Gives the account a WhatsApp application with this `appkey` (mt answers 9003 for an
    /// appkey the account does not have). Its bound phones are bound to every application of
    /// the account: the sandbox's simplification.
    pub fn appkey(mut self, appkey: impl Into<String>) -> Self {
        self.appkeys.push(appkey.into());
        self
    }

    /// The appkeys.
    pub fn appkeys(&self) -> &[String] {
        &self.appkeys
    }

    /// Binds a business phone (digits with country code) to the account.
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phones.push(phone.into());
        self
    }

    /// The access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The bound phones.
    pub fn phones(&self) -> &[String] {
        &self.phones
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("phones", &self.phones)
            .field("appkeys", &self.appkeys)
            .finish()
    }
}

/// An On-Premises user for `POST /v1/users/login`. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct OnPremUser {
    pub(crate) username: String,
    pub(crate) password: String,
    /// A fresh installation's admin: the first login must set a new password.
    pub(crate) must_change_password: bool,
}

impl OnPremUser {
    /// A user with this name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            must_change_password: false,
        }
    }

    /// The user of a fresh installation, as Meta's admin user is: its first login must carry
    /// `{"new_password":"..."}`; a login without one is refused (HTTP 400, Meta code 1005
    /// "Access denied" — the sandbox's reading, as the spec names the requirement but not the
    /// answer) until the password has been changed.
    pub fn must_change_password(mut self) -> Self {
        self.must_change_password = true;
        self
    }

    /// [`DEMO_ONPREM_USER`] / [`DEMO_ONPREM_PASSWORD`].
    pub fn demo() -> Self {
        Self::new(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD)
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for OnPremUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnPremUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the sandbox behaves. Built with chained methods from [`SandboxConfig::default`]:
///
/// | setting | default |
/// | --- | --- |
/// | address | `127.0.0.1:0` (a free port) |
/// | accounts | [`Account::demo`] (`demo-access-key` / `demo-access-secret`, phone `8613800138000`, appkey `demo-appkey`) |
/// | clock offset | 0 ms |
/// | download URL lifetime | [`DEFAULT_URL_LIFETIME`] (300 s) |
/// | On-Prem token lifetime | [`DEFAULT_TOKEN_LIFETIME`] (3600 s) |
/// | On-Prem users | [`OnPremUser::demo`] (`admin` / `demo-password`) |
/// | NXCloud inbound webhook URL | none |
/// | On-Prem callback (webhook) URL | none |
/// | max JSON body | [`DEFAULT_MAX_JSON_BODY`] (64 KiB) |
/// | max stored media | [`DEFAULT_MAX_STORAGE_BYTES`] (2 GiB) |
/// | storage | a new temporary directory under the system's temp dir |
/// | random seed | fresh each start |
/// | shutdown grace | 2 s for in-flight requests |
/// | TLS | off: plain `http://` |
///
/// Webhook and callback URLs must be `http://` URLs on a loopback address (`127.0.0.0/8`,
/// `[::1]` or `localhost`): the sandbox never sends traffic anywhere else.
#[derive(Clone)]
pub struct SandboxConfig {
    pub(crate) bind: SocketAddr,
    pub(crate) accounts: Vec<Account>,
    pub(crate) clock_offset_ms: i64,
    pub(crate) url_lifetime: Duration,
    pub(crate) token_lifetime: Duration,
    pub(crate) onprem_users: Vec<OnPremUser>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) onprem_callback_url: Option<String>,
    pub(crate) max_json_body: usize,
    pub(crate) max_storage_bytes: u64,
    pub(crate) storage_dir: Option<PathBuf>,
    pub(crate) seed: Option<u64>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) tls: bool,
    pub(crate) fault_hold_limit: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            accounts: vec![Account::demo()],
            clock_offset_ms: 0,
            url_lifetime: DEFAULT_URL_LIFETIME,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            onprem_users: vec![OnPremUser::demo()],
            webhook_url: None,
            onprem_callback_url: None,
            max_json_body: DEFAULT_MAX_JSON_BODY,
            max_storage_bytes: DEFAULT_MAX_STORAGE_BYTES,
            storage_dir: None,
            seed: None,
            shutdown_grace: Duration::from_secs(2),
            tls: false,
            fault_hold_limit: crate::fault::STALL_LIMIT,
        }
    }
}

impl SandboxConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen on this address instead of `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Adds an account (the demo account stays unless [`SandboxConfig::accounts`] replaces it).
    pub fn account(mut self, account: Account) -> Self {
        self.accounts.push(account);
        self
    }

    /// Replaces every account.
    pub fn accounts(mut self, accounts: impl IntoIterator<Item = Account>) -> Self {
        self.accounts = accounts.into_iter().collect();
        self
    }

    /// Puts the sandbox clock this many milliseconds ahead (positive) or behind (negative) the
    /// system clock. Can also be changed while running with [`crate::Sandbox::set_clock_offset_ms`].
    pub fn clock_offset_ms(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    /// How long getMedia's download URLs stay valid (whole seconds; at least 1 s).
    pub fn url_lifetime(mut self, lifetime: Duration) -> Self {
        self.url_lifetime = lifetime;
        self
    }

    /// How long On-Premises tokens stay valid (millisecond precision, so tests can use a tiny
    /// lifetime), rounded down to the whole second the login's `expires_after` names: a token
    /// is refused from that second on.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Adds an On-Premises user (the demo user stays unless [`SandboxConfig::onprem_users`]
    /// replaces it).
    pub fn onprem_user(mut self, user: OnPremUser) -> Self {
        self.onprem_users.push(user);
        self
    }

    /// Replaces every On-Premises user.
    pub fn onprem_users(mut self, users: impl IntoIterator<Item = OnPremUser>) -> Self {
        self.onprem_users = users.into_iter().collect();
        self
    }

    /// Where the NXCloud inbound-message webhook is POSTed (a loopback `http://` URL, no user
    /// info).
    pub fn webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// Where On-Premises notifications (retry-download results) are POSTed (a loopback
    /// `http://` URL).
    pub fn onprem_callback_url(mut self, url: impl Into<String>) -> Self {
        self.onprem_callback_url = Some(url.into());
        self
    }

    /// The largest JSON request body accepted; larger ones are answered 413 without being read.
    pub fn max_json_body(mut self, bytes: usize) -> Self {
        self.max_json_body = bytes;
        self
    }

    /// How many bytes of media the sandbox stores at most; uploads beyond it fail (NXCloud 9001,
    /// On-Prem 1014).
    pub fn max_storage_bytes(mut self, bytes: u64) -> Self {
        self.max_storage_bytes = bytes;
        self
    }

    /// Creates the sandbox's temporary media directory inside `dir` instead of the system's
    /// temp dir. The directory the sandbox creates is removed when it stops.
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_dir = Some(dir.into());
        self
    }

    /// Seeds the sandbox's random source (media ids, tokens, URL keys), for reproducible runs.
    /// Nothing the sandbox generates is meant to be secure.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long shutdown waits for in-flight requests before closing their connections.
    /// Stalled and dripping fault answers are cut at once.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Serve HTTPS: a throwaway CA and a certificate it signed for the listening IP are made
    /// at start ([`crate::Sandbox::ca_pem`] gives the CA to trust); the base URL and the
    /// download URLs are then `https://`.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// How long one fault may hold a connection (a stall, a drip, an endless stream) before the
    /// sandbox closes it: [`STALL_LIMIT`](crate::STALL_LIMIT) by default. A test that expects
    /// its client to give up first can set it a little past its client's deadline, so a client
    /// that does not give up ends anyway (with a broken answer) instead of holding the test.
    pub fn fault_hold_limit(mut self, limit: Duration) -> Self {
        self.fault_hold_limit = limit;
        self
    }

    /// The configured listening address.
    pub fn bind_addr(&self) -> SocketAddr {
        self.bind
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("bind", &self.bind)
            .field("accounts", &self.accounts)
            .field("clock_offset_ms", &self.clock_offset_ms)
            .field("url_lifetime", &self.url_lifetime)
            .field("token_lifetime", &self.token_lifetime)
            .field("onprem_users", &self.onprem_users)
            .field("webhook_url", &self.webhook_url.as_deref().map(shown_url))
            .field(
                "onprem_callback_url",
                &self.onprem_callback_url.as_deref().map(shown_url),
            )
            .field("max_json_body", &self.max_json_body)
            .field("max_storage_bytes", &self.max_storage_bytes)
            .field("storage_dir", &self.storage_dir)
            .field("seed", &self.seed)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("tls", &self.tls)
            .field("fault_hold_limit", &self.fault_hold_limit)
            .finish()
    }
}

/// Why the sandbox could not start or could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The configuration cannot be used.
    #[error("sandbox configuration: {0}")]
    Config(String),
    /// Binding, the temp dir, the runtime or a file operation failed.
    #[error("sandbox I/O: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An inbound simulation was refused (unknown type, MIME not in the table, bad size, ...).
    #[error("inbound simulation refused: {0}")]
    Inbound(String),
    /// The sandbox has stopped.
    #[error("the sandbox has stopped")]
    Stopped,
}

impl SandboxError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| SandboxError::Io { context, source }
    }
}

impl SandboxConfig {
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let bad = |s: String| Err(SandboxError::Config(s));
        for account in &self.accounts {
            if account.access_key.is_empty() || account.secret.is_empty() {
                return bad("an account has an empty access key or secret".into());
            }
            if account.appkeys.iter().any(String::is_empty) {
                return bad(format!(
                    "account {} has an empty appkey",
                    account.access_key
                ));
            }
            for phone in &account.phones {
                if !is_digits(phone) {
                    return bad(format!(
                        "business phone {phone:?} of account {} must be digits only",
                        account.access_key
                    ));
                }
            }
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if self.accounts[..i]
                .iter()
                .any(|b| b.access_key == a.access_key)
            {
                return bad(format!("access key {} is configured twice", a.access_key));
            }
        }
        for user in &self.onprem_users {
            if user.username.is_empty() || user.username.contains(':') {
                return bad("an On-Prem user name is empty or contains `:`".into());
            }
        }
        parse_loopback(self.webhook_url.as_deref())?;
        parse_loopback(self.onprem_callback_url.as_deref())?;
        if self.url_lifetime.as_secs() == 0 {
            return bad("the download URL lifetime must be at least 1 s".into());
        }
        if self.token_lifetime.is_zero() {
            return bad("the token lifetime must not be zero".into());
        }
        if self.fault_hold_limit.is_zero() {
            return bad("the fault hold limit must not be zero".into());
        }
        if self.max_json_body == 0 {
            return bad("the max JSON body must not be zero".into());
        }
        Ok(())
    }
}

/// An optional webhook or callback URL, parsed as a [`LoopbackUrl`]; a bad one is a
/// configuration error.
pub(crate) fn parse_loopback(url: Option<&str>) -> Result<Option<LoopbackUrl>, SandboxError> {
    url.map(LoopbackUrl::parse)
        .transpose()
        .map_err(SandboxError::Config)
}
