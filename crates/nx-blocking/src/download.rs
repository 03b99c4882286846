//! Downloads: stream the bytes into any `Write`, or into a file that appears at its path only
//! once every check has passed.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use nx_protocol::call::{DownloadCall, DownloadNext};
use nx_protocol::client::Error;
use nx_protocol::download::{DownloadOptions, Verified};
use nx_protocol::wa::{DownloadUrl, MediaInfo};

use crate::client::{Client, now};
use nx_protocol::call::TransferFailure as Failed;

use crate::sink::{Target, TempFile, receive};
use crate::transport::{self, Exchange};

impl Client {
    /// Streams the media behind `info.url` into `sink`, checking Content-Length, the size limit
    /// and (when given) SHA-256. The URL is used as it is: to refresh an expired one, use
    /// [`Client::download_media`].
    pub fn download<W: Write + ?Sized>(
        &self,
        info: &MediaInfo,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        self.download_loop(None, info.clone(), Target::Writer(sink), options)
    }

    /// getMedia, then streams the media into `sink` with the checks of [`Client::download`]. If
    /// the URL has expired (or the storage answers 403), a fresh one is fetched once.
    pub fn download_media<W: Write + ?Sized>(
        &self,
        business_phone: &str,
        media_id: &str,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let info = self.get_media(business_phone, media_id)?;
        self.download_loop(
            Some((business_phone, media_id)),
            info,
            Target::Writer(sink),
            options,
        )
    }

    /// Like [`Client::download_media`], into a file: the bytes go to a temporary file in the
    /// same directory, renamed to `path` only after every check passed. On any failure nothing
    /// is left at `path` (an existing file there is untouched).
    pub fn download_media_to_path(
        &self,
        business_phone: &str,
        media_id: &str,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let info = self.get_media(business_phone, media_id)?;
        self.download_loop::<std::fs::File>(
            Some((business_phone, media_id)),
            info,
            Target::Path(path.as_ref()),
            options,
        )
    }

    /// [`Client::download`] into a file, as [`Client::download_media_to_path`] does.
    pub fn download_to_path(
        &self,
        info: &MediaInfo,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        self.download_loop::<std::fs::File>(
            None,
            info.clone(),
            Target::Path(path.as_ref()),
            options,
        )
    }

    /// The retry loop around one download; the decisions are nx-protocol's ([`DownloadCall`]),
    /// only fetching and sleeping happen here.
    fn download_loop<W: Write + ?Sized>(
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
                info = self.get_media(phone, id)?;
            }
            let result = match &mut target {
                Target::Writer(sink) => self.fetch(&info.url, &mut **sink, &mut options),
                Target::Path(path) => self.fetch_to_path(&info.url, path, &mut options),
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
                    info = self.get_media(phone, id)?;
                }
                DownloadNext::Retry { delay } => std::thread::sleep(delay),
                DownloadNext::Fail(error) => return Err(error),
                DownloadNext::GiveUp => return Err(error),
            }
        }
    }

    /// One fetch into a fresh temporary file beside `path`, renamed into place only once every
    /// check passed; dropped (deleted) on any failure.
    fn fetch_to_path(
        &self,
        url: &DownloadUrl,
        path: &Path,
        options: &mut DownloadOptions,
    ) -> Result<Verified, Failed> {
        let mut temp = TempFile::create(path)?;
        // The bytes went to a temporary file, not to the caller: a failed fetch can be retried.
        let verified = self
            .fetch(url, temp.file(), options)
            .map_err(|f| Failed { wrote: false, ..f })?;
        temp.commit()?;
        Ok(verified)
    }

    /// One GET of the URL into `sink`, with the checks, one 64 KiB chunk at a time.
    fn fetch<W: Write + ?Sized>(
        &self,
        url: &DownloadUrl,
        sink: &mut W,
        options: &mut DownloadOptions,
    ) -> Result<Verified, Failed> {
        let config = &self.inner.config;
        let http = &self.inner.http;
        let uri: http::Uri = url.expose().parse().map_err(|_| {
            Error::InvalidInput(nx_protocol::InvalidInput::Url {
                url: url.to_string(),
                reason: "it is not a valid URL",
            })
        })?;
        let request = http::Request::get(uri)
            .header(
                http::header::USER_AGENT,
                config.transport.user_agent.as_str(),
            )
            .body(())
            .map_err(|e| Error::Transport {
                source: Box::new(e),
            })?;
        tracing::debug!(url = %url, "downloading");
        let idle = http.request_timeout();
        let response = http.send(
            request,
            None,
            Exchange::Transfer,
            "waiting for the download to start",
        )?;
        let status = response.status();
        if !status.is_success() {
            let body = transport::error_body(response, 64 * 1024, idle)?;
            return Err(Error::Response(nx_protocol::ResponseError::Http {
                status,
                snippet: nx_protocol::Snippet::of(&body),
            })
            .into());
        }
        let total = nx_protocol::head::content_length(response.headers());
        let check = options.check(config.transport.max_download_bytes, total)?;
        receive(response.into_body(), check, sink, idle, options)
    }
}
