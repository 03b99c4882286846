//! Downloads: stream the bytes into any `AsyncWrite`, or into a file that appears at its path
//! only once every check has passed.

use std::path::Path;

use nx_protocol::call::Call;
use nx_protocol::download::{DownloadOptions, Verified};
use nx_protocol::error::Error;
use nx_protocol::wa::MediaInfo;
use tokio::io::AsyncWrite;
use tracing::Instrument;

use crate::client::Client;
use crate::drive::{Ended, drive};
use crate::sink::Target;

impl Client {
    /// Streams the media behind `info.url()` into `sink`, checking Content-Length, the size limit
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

    /// One download: the [`Call`] machine decides (URL refresh included), [`drive`] fetches.
    async fn download_loop<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        refresh_with: Option<(&str, &str)>,
        info: MediaInfo,
        mut target: Target<'_, W>,
        options: DownloadOptions,
    ) -> Result<Verified, Error> {
        let config = &self.inner.config;
        let rewindable = target.rewindable();
        let mut call = Call::download(info, config, options, refresh_with.is_some(), rewindable);
        call.set_seed(fastrand::u64(..));
        let span = tracing::info_span!("nx.download");
        async {
            loop {
                match drive(&self.inner.http, &mut call, None, &mut target).await {
                    Ended::RefreshUrl => match refresh_with {
                        Some((phone, id)) => call.refreshed(self.get_media(phone, id).await),
                        None => return Ended::RefreshUrl.into_result(),
                    },
                    step => return step.into_result(),
                }
            }
        }
        .instrument(span)
        .await
    }
}
