//! The WhatsApp Business On-Premises media client: login and token reuse, upload, retrieve,
//! delete and retry-download, over the same agent as the NXCloud client.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nx_protocol::AccessSecret;
use nx_protocol::call::{Call, Kind, Step, Upload};
use nx_protocol::config::{FromConfig, OnPremBuilder, OnPremConfig, OnPremLogin};
use nx_protocol::download::DownloadOptions;
use nx_protocol::error::Error;
use nx_protocol::onprem::{
    DeleteMedia, DownloadRequested, Login, NextToken, OnPremOperation, RetrieveMedia, Retrieved,
    RetryDownload, Token, TokenSlot, UploadMedia, UploadedMedia,
};

use crate::client::now;
use crate::drive::drive;
use crate::sink::Target;
use crate::transport::Http;
use crate::upload::UploadSource;

/// A blocking client for a WhatsApp Business On-Premises installation's media endpoints.
/// Cheap to clone (an `Arc` inside) and usable from many threads; connections are pooled and
/// kept alive.
///
/// With a user name and password it logs in on first use, reuses the token until shortly
/// before its `expires_after`, and after a 401 logs in once more and retries the call once.
/// Concurrent calls share one login.
///
/// ```no_run
/// # fn run() -> Result<(), nx_blocking::Error> {
/// use nx_blocking::{DownloadOptions, OnPremClient, UploadSource};
///
/// let client = OnPremClient::builder()
///     .base_url("https://wa.example.internal:9090")
///     .password("admin", "secret")
///     .build()?;
/// let uploaded = client.upload_media("image/png", UploadSource::path("logo.png"))?;
/// let retrieved =
///     client.retrieve_media_to_path(&uploaded.id, "copy.png", DownloadOptions::new())?;
/// println!("{} bytes of {:?}", retrieved.verified.len, retrieved.media.content_type);
/// let ack = client.retry_download("f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68")?;
/// println!("download started for {:?}", ack.ids);
/// client.delete_media(&uploaded.id)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OnPremClient {
    inner: Arc<Inner>,
}

/// The settings (base URL, login, timeouts, retry policy, limits; secrets redacted), not the
/// HTTP stack's state, whose TLS roots alone run to thousands of characters.
impl std::fmt::Debug for OnPremClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OnPremClient")
            .field(&self.inner.config)
            .finish()
    }
}

#[derive(Debug)]
struct Inner {
    config: OnPremConfig,
    http: Http,
    /// The token in use; a lock so concurrent calls log in once, not once each.
    token: Mutex<TokenSlot>,
}

impl FromConfig<OnPremConfig> for OnPremClient {
    fn from_config(mut config: OnPremConfig) -> Result<Self, Error> {
        // The settings the client keeps say which proxy is used: the call machine names it
        // in a timeout.
        config
            .transport
            .resolve_proxy(|name| std::env::var(name).ok())?;
        config.check()?;
        let http = Http::new(&config.transport)?;
        let given = match &config.login {
            OnPremLogin::Token(token) => Some(token.clone()),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                token: Mutex::new(TokenSlot::new(given)),
            }),
        })
    }
}

impl OnPremClient {
    /// A builder: base URL (or `WA_ONPREM_URL`), user name and password or a token (or
    /// `WA_ONPREM_TOKEN`), timeouts, retries, limits, extra root certificates.
    pub fn builder() -> OnPremBuilder<OnPremClient> {
        OnPremBuilder::new(crate::USER_AGENT)
    }

    /// The settings in force.
    pub fn config(&self) -> &OnPremConfig {
        &self.inner.config
    }

    /// Logs in now (with a user name and password) and returns the new token; with a given
    /// token, returns it.
    pub fn login(&self) -> Result<Token, Error> {
        let mut slot = self.slot();
        if let OnPremLogin::Token(token) = &self.inner.config.login {
            return Ok(token.clone());
        }
        let token = self.fresh_login(&Login::new(), &slot)?;
        slot.store(token.clone());
        Ok(token)
    }

    /// The very first login of a fresh installation's admin user, which must set a new
    /// password (Meta's API refuses that user's first login without one). Logs in with the
    /// configured password and `new_password`, keeps the token, and from then on logs in
    /// (renewals, after a 401) with `new_password`. Not retried once sent: after it succeeded,
    /// the old password no longer logs in.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), nx_blocking::Error> {
    /// let client = nx_blocking::OnPremClient::builder()
    ///     .base_url("https://wa.example.internal:9090")
    ///     .password("admin", "secret") // the installation's initial password
    ///     .build()?;
    /// client.first_login("a-long-new-password")?;
    /// # Ok(()) }
    /// ```
    pub fn first_login(&self, new_password: &str) -> Result<Token, Error> {
        let mut slot = self.slot();
        let token = self.fresh_login(&Login::with_new_password(new_password), &slot)?;
        slot.password_changed(AccessSecret::new(new_password));
        slot.store(token.clone());
        Ok(token)
    }

    /// Executes any On-Premises operation whose body is not streamed.
    pub fn execute<O: OnPremOperation + ?Sized>(&self, op: &O) -> Result<O::Output, Error> {
        self.call(op, None)
    }

    /// `POST /v1/media`: uploads the file's raw bytes, streamed, with its MIME type (checked
    /// against WhatsApp's media table first). A failed attempt is retried only when the source
    /// can be reopened (a path or bytes, not a one-shot reader).
    pub fn upload_media(
        &self,
        mime_type: &str,
        source: UploadSource,
    ) -> Result<UploadedMedia, Error> {
        let op = UploadMedia::new(mime_type, crate::upload::len(&source)?);
        self.call(&op, Some(source))
    }

    /// `DELETE /v1/media/{id}`.
    pub fn delete_media(&self, id: &str) -> Result<(), Error> {
        self.execute(&DeleteMedia::new(id))
    }

    /// `GET /v1/media/{id}/download`: asks the installation to download and store the media
    /// again. The answer only acknowledges the request; the outcome arrives later at the
    /// webhook, which [`crate::NotificationHub`] matches.
    pub fn retry_download(&self, id: &str) -> Result<DownloadRequested, Error> {
        self.execute(&RetryDownload::new(id))
    }

    /// `GET /v1/media/{id}`: streams the file into `sink` with the checks of `options`
    /// (length, size cap, SHA-256 when given). A missing id is an error whose
    /// [`nx_protocol::ResponseError::is_not_found`] is true. Once bytes have reached `sink`,
    /// a failure is final (the writer cannot be rewound).
    pub fn retrieve_media<W: Write + ?Sized>(
        &self,
        id: &str,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        self.retrieve_loop(&RetrieveMedia::new(id), Target::Writer(sink), options)
    }

    /// Like [`OnPremClient::retrieve_media`], into a file that appears at `path` only once
    /// every check has passed; on failure nothing is left there (an existing file there is
    /// untouched).
    pub fn retrieve_media_to_path(
        &self,
        id: &str,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        let target = Target::<std::fs::File>::Path(path.as_ref());
        self.retrieve_loop(&RetrieveMedia::new(id), target, options)
    }

    /// The token slot. A panic elsewhere cannot leave it half-written (it is replaced whole),
    /// so a poisoned lock is used as it is.
    fn slot(&self) -> MutexGuard<'_, TokenSlot> {
        self.inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One call of `op` carrying the token.
    fn call<O: OnPremOperation + ?Sized>(
        &self,
        op: &O,
        mut source: Option<UploadSource>,
    ) -> Result<O::Output, Error> {
        let upload = Upload {
            one_shot: source.as_ref().is_some_and(|s| !s.reopenable()),
        };
        let mut call = Call::onprem(op, &self.inner.config, upload);
        call.set_seed(fastrand::u64(..));
        let span = tracing::info_span!("nx.onprem", method = %op.method());
        span.in_scope(|| self.run(&mut call, source.as_mut(), &mut Target::none()))
    }

    /// One retrieve into `target`.
    fn retrieve_loop<W: Write + ?Sized>(
        &self,
        op: &RetrieveMedia,
        mut target: Target<'_, W>,
        options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        let rewindable = target.rewindable();
        let mut call = Call::retrieve(op, &self.inner.config, options, rewindable);
        call.set_seed(fastrand::u64(..));
        let span = tracing::info_span!("nx.onprem.retrieve");
        span.in_scope(|| self.run(&mut call, None, &mut target))
    }

    /// Drives `call`, answering its token steps.
    fn run<K: Kind, W: Write + ?Sized>(
        &self,
        call: &mut Call<K>,
        mut source: Option<&mut UploadSource>,
        target: &mut Target<'_, W>,
    ) -> Result<K::Output, Error> {
        loop {
            match drive(&self.inner.http, call, source.as_deref_mut(), target) {
                Step::Token { rejected } => call.token(self.token(rejected.as_ref())),
                step => return step.into_result(),
            }
        }
    }

    /// The token to send, logging in first when the slot says so (none yet, about to expire,
    /// or `rejected` by a 401 and not replaced by another call meanwhile). `None`: a given token
    /// was refused, there is nothing to log in with.
    fn token(&self, rejected: Option<&Token>) -> Result<Option<Token>, Error> {
        let mut slot = self.slot();
        let margin = self.inner.config.token_refresh_margin.as_millis() as u64;
        match slot.next(rejected, now(), margin) {
            NextToken::Use(token) => Ok(Some(token)),
            NextToken::Refused => Ok(None),
            _ => {
                let token = self.fresh_login(&Login::new(), &slot)?;
                slot.store(token.clone());
                Ok(Some(token))
            }
        }
    }

    /// Logs in with the user name and the password in force (`slot` knows whether a first
    /// login changed it).
    fn fresh_login(&self, login: &Login, slot: &TokenSlot) -> Result<Token, Error> {
        let config = &self.inner.config;
        let (username, password) = config.login.credentials(slot)?;
        let mut call = Call::login(login, config, username, password);
        call.set_seed(fastrand::u64(..));
        let span = tracing::info_span!("nx.onprem.login");
        span.in_scope(|| drive(&self.inner.http, &mut call, None, &mut Target::none()))
            .into_result()
    }
}
