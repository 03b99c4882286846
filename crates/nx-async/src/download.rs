//! Downloads: stream the bytes into any `AsyncWrite`, or into a file that appears at its path
//! only once every check has passed.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use http_body_util::BodyExt;
use nx_protocol::call::{DownloadCall, DownloadNext};
use nx_protocol::client::Error;
use nx_protocol::download::{DownloadCheck, Sha256Digest, Verified};
use nx_protocol::wa::{DownloadUrl, MediaInfo};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::{Client, now};
use crate::transport;

/// Progress callback: bytes so far, total when announced.
pub type Progress = Box<dyn FnMut(u64, Option<u64>) + Send>;

/// How to check and report a download.
#[derive(Default)]
pub struct DownloadOptions {
    sha256: Option<Sha256Digest>,
    max_bytes: Option<u64>,
    progress: Option<Progress>,
}

impl DownloadOptions {
    /// No expected digest, the client's maximum size, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Require this SHA-256 (the inbound webhook gives it).
    pub fn sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// Refuse downloads larger than `n` bytes (default: the client's `max_download_bytes`).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Called after every chunk with (bytes so far, total when announced).
    pub fn progress(mut self, f: impl FnMut(u64, Option<u64>) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("sha256", &self.sha256)
            .field("max_bytes", &self.max_bytes)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Where the bytes go: a caller's writer, or a fresh temporary file per attempt.
enum Target<'a, W: ?Sized> {
    Writer(&'a mut W),
    Path(&'a Path),
}

/// Why one fetch failed, and whether bytes had already reached the caller's writer.
struct Failed {
    error: Error,
    wrote: bool,
}

impl Client {
    /// Streams the media behind `info.url` into `sink`, checking Content-Length, the size limit
    /// and (when given) SHA-256. The URL is used as it is: to refresh an expired one, use
    /// [`Client::download_media`].
    pub async fn download<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        info: &MediaInfo,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        self.download_loop(None, info.clone(), Target::Writer(sink), options)
            .await
    }

    /// getMedia, then streams the media into `sink` with the checks of [`Client::download`]. If
    /// the URL has expired (or the storage answers 403), a fresh one is fetched once.
    pub async fn download_media<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        business_phone: &str,
        media_id: &str,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let info = self.get_media(business_phone, media_id).await?;
        self.download_loop(
            Some((business_phone, media_id)),
            info,
            Target::Writer(sink),
            options,
        )
        .await
    }

    /// Like [`Client::download_media`], into a file: the bytes go to a temporary file in the
    /// same directory, renamed to `path` only after every check passed. On any failure nothing
    /// is left at `path` (an existing file there is untouched).
    pub async fn download_media_to_path(
        &self,
        business_phone: &str,
        media_id: &str,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let info = self.get_media(business_phone, media_id).await?;
        self.download_loop::<tokio::fs::File>(
            Some((business_phone, media_id)),
            info,
            Target::Path(path.as_ref()),
            options,
        )
        .await
    }

    /// [`Client::download`] into a file, as [`Client::download_media_to_path`] does.
    pub async fn download_to_path(
        &self,
        info: &MediaInfo,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        self.download_loop::<tokio::fs::File>(
            None,
            info.clone(),
            Target::Path(path.as_ref()),
            options,
        )
        .await
    }

    async fn download_loop<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        refresh_with: Option<(&str, &str)>,
        mut info: MediaInfo,
        mut target: Target<'_, W>,
        mut options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let config = &self.inner.config;
        let mut call = DownloadCall::new(
            config.transport.retry.clone(),
            config.transport.overall_timeout,
            refresh_with.is_some(),
        );
        let started = Instant::now();
        loop {
            if call.begin_attempt(&info.url, now())
                && let Some((phone, id)) = refresh_with
            {
                info = self.get_media(phone, id).await?;
            }
            let result = match &mut target {
                Target::Writer(sink) => self.fetch(&info.url, &mut **sink, &mut options).await,
                Target::Path(path) => self.fetch_to_path(&info.url, path, &mut options).await,
            };
            let Failed { error, wrote } = match result {
                Ok(verified) => return Ok(verified),
                Err(failed) => failed,
            };
            match call.after_error(
                &info.url,
                &error,
                wrote,
                now(),
                started.elapsed(),
                fastrand::u64(..),
            ) {
                DownloadNext::RefreshUrl => {
                    let Some((phone, id)) = refresh_with else {
                        return Err(error);
                    };
                    info = self.get_media(phone, id).await?;
                }
                DownloadNext::Retry { delay } => tokio::time::sleep(delay).await,
                DownloadNext::Fail(error) => return Err(error),
                DownloadNext::GiveUp => return Err(error),
            }
        }
    }

    async fn fetch_to_path(
        &self,
        url: &DownloadUrl,
        path: &Path,
        options: &mut DownloadOptions,
    ) -> Result<Verified, Failed> {
        let io = |context: &str, e| Failed {
            error: Error::io(format!("{context} {}", path.display()), e),
            wrote: false,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".nx-download-")
            .tempfile_in(&dir)
            .map_err(|e| io("creating a temporary file beside", e))?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| io("opening the temporary file for", e))?;
        let mut file = tokio::fs::File::from_std(file);
        let verified = self
            .fetch(url, &mut file, options)
            .await
            .map_err(|f| Failed { wrote: false, ..f })?;
        file.flush().await.map_err(|e| io("writing", e))?;
        file.sync_all().await.map_err(|e| io("syncing", e))?;
        drop(file);
        temp.persist(path)
            .map_err(|e| io("renaming the download into", e.error))?;
        Ok(verified)
    }

    /// One GET of the URL into `sink`, with the checks.
    async fn fetch<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        url: &DownloadUrl,
        sink: &mut W,
        options: &mut DownloadOptions,
    ) -> Result<Verified, Failed> {
        let config = &self.inner.config;
        let fail = |error| Failed {
            error,
            wrote: false,
        };
        let uri: http::Uri = url.expose().parse().map_err(|_| {
            fail(Error::InvalidInput(nx_protocol::InvalidInput::Url {
                url: url.to_string(),
                reason: "it is not a valid URL",
            }))
        })?;
        let request = http::Request::get(uri)
            .header(
                http::header::USER_AGENT,
                config.transport.user_agent.as_str(),
            )
            .body(transport::empty())
            .map_err(|e| {
                fail(Error::Transport {
                    source: Box::new(e),
                })
            })?;
        tracing::debug!(url = %url, "downloading");
        let idle = config.transport.request_timeout;
        let timeout = |during| Error::Timeout {
            during,
            after: idle,
        };
        let response = tokio::time::timeout(idle, transport::send(&self.inner.http, request))
            .await
            .map_err(|_| fail(timeout("waiting for the download to start")))?
            .map_err(fail)?;
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(idle, transport::read_capped(response, 64 * 1024))
                .await
                .map_err(|_| fail(timeout("reading an error answer")))?
                .unwrap_or_default();
            return Err(fail(Error::Response(nx_protocol::ResponseError::Http {
                status,
                snippet: nx_protocol::Snippet::of(&body),
            })));
        }
        let mut check = DownloadCheck::new(
            options
                .max_bytes
                .unwrap_or(config.transport.max_download_bytes),
        );
        if let Some(digest) = options.sha256 {
            check = check.expect_sha256(digest);
        }
        let total = transport::content_length(response.headers());
        check.begin(total).map_err(|e| fail(e.into()))?;
        let mut body = response.into_body();
        let mut wrote = false;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(Failed {
                        error: timeout("receiving the download"),
                        wrote,
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Failed {
                        error: Error::Transport {
                            source: Box::new(e),
                        },
                        wrote,
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            check.update(&chunk).map_err(|e| Failed {
                error: e.into(),
                wrote,
            })?;
            sink.write_all(&chunk).await.map_err(|e| Failed {
                error: Error::io("writing the download", e),
                wrote: true,
            })?;
            wrote = true;
            if let Some(progress) = &mut options.progress {
                progress(check.received(), total);
            }
        }
        sink.flush().await.map_err(|e| Failed {
            error: Error::io("writing the download", e),
            wrote,
        })?;
        check.finish().map_err(|e| Failed {
            error: e.into(),
            wrote,
        })
    }
}
