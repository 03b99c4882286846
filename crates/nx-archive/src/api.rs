//! Where the media come from: NXCloud (getMedia, then the pre-signed URL) or an On-Premises
//! installation (`GET /v1/media/{id}`), through nx-async's public API.

use nx_async::{Client, DownloadOptions, Error, MediaInfo, OnPremClient, Verified};
use nx_protocol::InvalidInput;
use tokio::io::AsyncWrite;

use crate::source::Item;

/// The API the media are fetched from (and deleted from, with `delete_after`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Api {
    /// NXCloud's WhatsApp media API; each item names its merchant phone.
    NxCloud(Client),
    /// A WhatsApp Business On-Premises installation.
    OnPrem(OnPremClient),
}

/// What is known before the transfer starts.
pub(crate) enum Prepared {
    /// getMedia's answer: MIME type and download URL.
    NxCloud(MediaInfo),
    /// Nothing: the retrieve itself answers the MIME type.
    OnPrem,
}

impl Prepared {
    /// The MIME type, if known before the transfer.
    pub(crate) fn mime_type(&self) -> Option<&str> {
        match self {
            Prepared::NxCloud(info) => Some(info.mime_type()),
            Prepared::OnPrem => None,
        }
    }
}

fn phone(item: &Item) -> Result<&str, Error> {
    item.phone
        .as_deref()
        .ok_or(Error::InvalidInput(InvalidInput::Phone {
            reason: "the item names no merchant phone",
            len: 0,
        }))
}

impl Api {
    /// NXCloud: getMedia (a fresh URL for every attempt). On-Premises: nothing.
    pub(crate) async fn prepare(&self, item: &Item) -> Result<Prepared, Error> {
        match self {
            Api::NxCloud(client) => Ok(Prepared::NxCloud(
                client.get_media(phone(item)?, &item.id).await?,
            )),
            Api::OnPrem(_) => Ok(Prepared::OnPrem),
        }
    }

    /// Streams the media into `sink` with the checks of `options`; what arrived, and the
    /// MIME type the answer named (On-Premises).
    pub(crate) async fn transfer<W: AsyncWrite + Unpin>(
        &self,
        prepared: &Prepared,
        item: &Item,
        sink: &mut W,
        options: DownloadOptions,
    ) -> Result<(Verified, Option<String>), Error> {
        match (self, prepared) {
            (Api::NxCloud(client), Prepared::NxCloud(info)) => {
                Ok((client.download(info, sink, options).await?, None))
            }
            (Api::OnPrem(client), _) => {
                let retrieved = client.retrieve_media(&item.id, sink, options).await?;
                Ok((retrieved.verified, retrieved.media.content_type))
            }
            (Api::NxCloud(client), Prepared::OnPrem) => {
                let info = client.get_media(phone(item)?, &item.id).await?;
                Ok((client.download(&info, sink, options).await?, None))
            }
        }
    }

    /// deleteMedia, or `DELETE /v1/media/{id}`.
    pub(crate) async fn delete(&self, item: &Item) -> Result<(), Error> {
        match self {
            Api::NxCloud(client) => client.delete_media(phone(item)?, &item.id).await.map(drop),
            Api::OnPrem(client) => client.delete_media(&item.id).await,
        }
    }

    /// Whether a failed delete means the media is gone already. On-Premises answers 404 for
    /// an unknown id; NXCloud's -1 also means other failures, so it is not read as gone.
    pub(crate) fn is_gone(&self, error: &Error) -> bool {
        match (self, error) {
            (Api::OnPrem(_), Error::Response(response)) => response.is_not_found(),
            _ => false,
        }
    }
}
