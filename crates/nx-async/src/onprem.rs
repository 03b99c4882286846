//! The WhatsApp Business On-Premises media client: login and token reuse, upload, retrieve,
//! delete and retry-download, over the same transport as the NXCloud client.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use nx_protocol::AccessSecret;
use nx_protocol::call::{CallState, Next, TransferFailure as Failed};
use nx_protocol::client::{Error, FromConfig, OnPremBuilder, OnPremConfig, OnPremLogin};
use nx_protocol::download::DownloadOptions;
use nx_protocol::onprem::{
    self, AfterRejection, Auth, DeleteMedia, DownloadRequested, Login, OnPremOperation,
    RetrieveHead, RetrieveMedia, Retrieved, RetryDownload, Token, TokenSlot, UploadMedia,
    UploadedMedia,
};
use tokio::io::AsyncWrite;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::client::now;
use crate::sink::{Target, TempFile, receive};
use crate::transport::{self, Http};
use crate::upload::UploadSource;

/// An async client for a WhatsApp Business On-Premises installation's media endpoints.
///
/// With a user name and password it logs in on first use, reuses the token until shortly
/// before its `expires_after`, and after a 401 logs in once more and retries the call once.
///
/// ```no_run
/// # async fn run() -> Result<(), nx_async::Error> {
/// let client = nx_async::OnPremClient::builder()
///     .base_url("https://wa.example.internal:9090")
///     .password("admin", "secret")
///     .build()?;
/// let ack = client.retry_download("f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68").await?;
/// println!("download started for {:?}", ack.ids);
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
    fn from_config(config: OnPremConfig) -> Result<Self, Error> {
        config.check()?;
        let http = transport::http_client(&config.transport)?;
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

/// Whose credentials an attempt carries.
#[derive(Clone, Copy)]
enum Credential<'a> {
    /// A user name and password (for [`Login`]).
    Basic {
        username: &'a str,
        password: &'a AccessSecret,
    },
    /// The current token, renewed as needed.
    Bearer,
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
    pub async fn login(&self) -> Result<Token, Error> {
        let mut slot = self.inner.token.lock().await;
        if let OnPremLogin::Token(token) = &self.inner.config.login {
            return Ok(token.clone());
        }
        let token = self.fresh_login(&Login::new(), &slot).await?;
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
    /// # async fn run() -> Result<(), nx_async::Error> {
    /// let client = nx_async::OnPremClient::builder()
    ///     .base_url("https://wa.example.internal:9090")
    ///     .password("admin", "secret") // the installation's initial password
    ///     .build()?;
    /// client.first_login("a-long-new-password").await?;
    /// # Ok(()) }
    /// ```
    pub async fn first_login(&self, new_password: &str) -> Result<Token, Error> {
        let mut slot = self.inner.token.lock().await;
        let token = self
            .fresh_login(&Login::with_new_password(new_password), &slot)
            .await?;
        slot.password_changed(AccessSecret::new(new_password));
        slot.store(token.clone());
        Ok(token)
    }

    /// Executes any On-Premises operation whose body is not streamed.
    pub async fn execute<O: OnPremOperation + ?Sized>(&self, op: &O) -> Result<O::Output, Error> {
        self.run(op, None, Credential::Bearer).await
    }

    /// `POST /v1/media`: uploads the file's raw bytes, streamed, with its MIME type (checked
    /// against WhatsApp's media table first).
    pub async fn upload_media(
        &self,
        mime_type: &str,
        source: UploadSource,
    ) -> Result<UploadedMedia, Error> {
        let op = UploadMedia::new(mime_type, crate::upload::len(&source).await?);
        self.run(&op, Some(source), Credential::Bearer).await
    }

    /// `DELETE /v1/media/{id}`.
    pub async fn delete_media(&self, id: &str) -> Result<(), Error> {
        self.execute(&DeleteMedia::new(id)).await
    }

    /// `GET /v1/media/{id}/download`: asks the installation to download and store the media
    /// again. The answer only acknowledges the request; the outcome arrives later at the
    /// webhook, which [`crate::NotificationHub`] matches.
    pub async fn retry_download(&self, id: &str) -> Result<DownloadRequested, Error> {
        self.execute(&RetryDownload::new(id)).await
    }

    /// `GET /v1/media/{id}`: streams the file into `sink` with the checks of `options`
    /// (length, size cap, SHA-256 when given). A missing id is an error whose
    /// [`nx_protocol::ResponseError::is_not_found`] is true.
    pub async fn retrieve_media<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        id: &str,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        self.retrieve_loop(&RetrieveMedia::new(id), Target::Writer(sink), options)
            .await
    }

    /// Like [`OnPremClient::retrieve_media`], into a file that appears at `path` only once
    /// every check has passed; on failure nothing is left there.
    pub async fn retrieve_media_to_path(
        &self,
        id: &str,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        let target = Target::<tokio::fs::File>::Path(path.as_ref());
        self.retrieve_loop(&RetrieveMedia::new(id), target, options)
            .await
    }

    /// Logs in with the user name and the password in force (`slot` knows whether a first
    /// login changed it). Boxed: the login itself runs through [`OnPremClient::run`], which
    /// asks for tokens.
    fn fresh_login<'a>(
        &'a self,
        login: &'a Login,
        slot: &'a TokenSlot,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Token, Error>> + Send + 'a>>
    {
        Box::pin(async move {
            let (username, password) = self.inner.config.login.credentials(slot)?;
            self.run(login, None, Credential::Basic { username, password })
                .await
        })
    }

    /// The current token, logging in first when there is none or it is about to expire.
    async fn token(&self) -> Result<Token, Error> {
        let mut slot = self.inner.token.lock().await;
        let margin = self.inner.config.token_refresh_margin.as_millis() as u64;
        if let Some(token) = slot.usable(now(), margin) {
            return Ok(token);
        }
        let token = self.fresh_login(&Login::new(), &slot).await?;
        slot.store(token.clone());
        Ok(token)
    }

    /// After a 401 with `rejected`: logs in again, unless another call already replaced it.
    /// `false` when there is nothing to log in with (a given token).
    async fn relogin(&self, rejected: &Token) -> Result<bool, Error> {
        let mut slot = self.inner.token.lock().await;
        match slot.after_rejection(rejected) {
            AfterRejection::Final => Ok(false),
            AfterRejection::Replaced(_) => Ok(true),
            _ => {
                let token = self.fresh_login(&Login::new(), &slot).await?;
                slot.store(token);
                Ok(true)
            }
        }
    }

    /// The retry loop of a call whose answer is read whole; the decisions are nx-protocol's.
    async fn run<O: OnPremOperation + ?Sized>(
        &self,
        op: &O,
        mut source: Option<UploadSource>,
        credential: Credential<'_>,
    ) -> Result<O::Output, Error> {
        let config = &self.inner.config;
        let transport = &config.transport;
        let reopenable = source
            .as_ref()
            .is_none_or(nx_protocol::body::UploadSource::reopenable);
        let mut call = CallState::on_premises(
            transport.retry.clone(),
            op.is_idempotent(),
            transport.overall_timeout,
        )
        .with_body(reopenable);
        let started = Instant::now();
        let span = tracing::info_span!("nx.onprem", method = %op.method(), attempt = tracing::field::Empty);
        async {
            loop {
                let attempt = call.begin_attempt();
                tracing::Span::current().record("attempt", attempt);
                // The token sent, kept for the re-login after a 401.
                let mut token = None;
                let auth = match credential {
                    Credential::Basic { username, password } => Auth::Basic {
                        username,
                        password: password.expose(),
                    },
                    Credential::Bearer => Auth::Bearer(token.insert(self.token().await?)),
                };
                let request = onprem::build_request(op, &config.base_url, auth)?;
                let sent = Instant::now();
                let error = match transport::exchange(
                    &self.inner.http,
                    transport,
                    request,
                    source.as_mut(),
                )
                .await
                {
                    Ok(answer) => match onprem::parse_response(
                        op,
                        answer.status,
                        &answer.headers,
                        &answer.body,
                    ) {
                        Ok(output) => {
                            tracing::debug!(
                                latency_ms = sent.elapsed().as_millis() as u64,
                                "call succeeded"
                            );
                            return Ok(output);
                        }
                        Err(e) => Error::Response(e),
                    },
                    Err(e) => e,
                };
                tracing::debug!(
                    latency_ms = sent.elapsed().as_millis() as u64,
                    status = error.status().map(|s| s.as_u16()),
                    error = %error,
                    "attempt failed"
                );
                match call.after_error(&error, None, now(), started.elapsed(), fastrand::u64(..)) {
                    Next::Retry { delay } => tokio::time::sleep(delay).await,
                    Next::Reauthenticate => match &token {
                        Some(token) if self.relogin(token).await? => {}
                        _ => return Err(error),
                    },
                    Next::Fail(error) => return Err(error),
                    Next::GiveUp => return Err(error),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The retry loop of a retrieve; a failure after bytes reached the caller's writer is final.
    async fn retrieve_loop<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        op: &RetrieveMedia,
        mut target: Target<'_, W>,
        mut options: DownloadOptions,
    ) -> Result<Retrieved, Error> {
        let transport = &self.inner.config.transport;
        let mut call =
            CallState::on_premises(transport.retry.clone(), true, transport.overall_timeout);
        let started = Instant::now();
        let span = tracing::info_span!("nx.onprem.retrieve", attempt = tracing::field::Empty);
        async {
            loop {
                let attempt = call.begin_attempt();
                tracing::Span::current().record("attempt", attempt);
                let token = self.token().await?;
                let result = match &mut target {
                    Target::Writer(sink) => {
                        self.retrieve_once(op, &token, &mut **sink, &mut options)
                            .await
                    }
                    Target::Path(path) => {
                        self.retrieve_to_temp(op, &token, path, &mut options).await
                    }
                };
                let failure = match result {
                    Ok(retrieved) => return Ok(retrieved),
                    Err(failed) => failed,
                };
                match call.after_transfer(&failure, now(), started.elapsed(), fastrand::u64(..)) {
                    Next::Retry { delay } => tokio::time::sleep(delay).await,
                    Next::Reauthenticate if self.relogin(&token).await? => {}
                    Next::Fail(error) => return Err(error),
                    _ => return Err(failure.error),
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn retrieve_to_temp(
        &self,
        op: &RetrieveMedia,
        token: &Token,
        path: &Path,
        options: &mut DownloadOptions,
    ) -> Result<Retrieved, Failed> {
        let (temp, mut file) = TempFile::create(path)?;
        let retrieved = self
            .retrieve_once(op, token, &mut file, options)
            .await
            .map_err(|f| Failed { wrote: false, ..f })?;
        temp.commit(file).await?;
        Ok(retrieved)
    }

    /// One retrieve attempt into `sink`.
    async fn retrieve_once<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        op: &RetrieveMedia,
        token: &Token,
        sink: &mut W,
        options: &mut DownloadOptions,
    ) -> Result<Retrieved, Failed> {
        let config = &self.inner.config;
        let request = onprem::build_request(op, &config.base_url, Auth::Bearer(token))
            .map_err(Error::from)?;
        let response = transport::start(&self.inner.http, &config.transport, request).await?;
        let status = response.status();
        match op
            .classify(status, response.headers())
            .map_err(Error::from)?
        {
            RetrieveHead::Media(media) => {
                let check =
                    options.check(config.transport.max_download_bytes, media.content_length)?;
                let idle = config.transport.request_timeout;
                let verified = receive(response.into_body(), check, sink, idle, options).await?;
                Ok(Retrieved::new(media, verified))
            }
            RetrieveHead::Error { status, max_body } => {
                let headers = response.headers().clone();
                let body = transport::error_body(
                    response,
                    max_body as u64,
                    config.transport.request_timeout,
                )
                .await;
                Err(Error::Response(op.answer_error(status, &headers, &body)).into())
            }
        }
    }
}
