//! What differs between the calls a [`super::Call`] runs: how each attempt's request is built
//! and how its answer is read. Everything else (attempts, limits, checks) is the machine's.

use http::{HeaderMap, StatusCode};

use super::Read;
use crate::body::OutgoingBody;
use crate::config::{ClientConfig, OnPremConfig, TransportConfig};
use crate::download::Verified;
use crate::error::Error;
use crate::error::{InvalidInput, ResponseError, Snippet};
use crate::onprem::{self, Auth, OnPremOperation, RetrieveHead, RetrieveMedia, Retrieved, Token};
use crate::operation::{self, Operation};
use crate::secret::AccessSecret;
use crate::time::Timestamp;
use crate::wa::{DownloadUrl, MediaInfo};

mod sealed {
    pub trait Sealed {}
}

/// The kinds of call a [`super::Call`] runs: [`Api`], [`OnPrem`], [`Fetch`], [`Retrieve`].
/// Sealed: the machine's rules hold for these four.
pub trait Kind: sealed::Sealed {
    /// What a successful call returns.
    type Output;
    /// The request of the next attempt, stamped `ts` (NXCloud) or carrying `token`.
    #[doc(hidden)]
    fn request(
        &mut self,
        ts: Timestamp,
        token: Option<&Token>,
    ) -> Result<http::Request<OutgoingBody>, Error>;
    /// Whether each attempt carries the client's bearer token.
    #[doc(hidden)]
    fn bearer(&self) -> bool {
        false
    }
    /// Whether to fetch a fresh download URL now (before an attempt, or after one `refused`
    /// with this status); counted as done when `true`.
    #[doc(hidden)]
    fn wants_fresh_url(&mut self, _refused: Option<StatusCode>, _now: Timestamp) -> bool {
        false
    }
    /// The fresh URL.
    #[doc(hidden)]
    fn refreshed(&mut self, _info: MediaInfo) {}
    /// The download URL fetched, if this is a download.
    #[doc(hidden)]
    fn url(&self) -> Option<&DownloadUrl> {
        None
    }
    /// The URL the attempts go to (the download URL in force, or the base URL), for naming
    /// the server in an error: built only then.
    #[doc(hidden)]
    fn origin(&self) -> Option<http::Uri>;
    /// The transport settings of the call's client (its proxy, for naming it in an error).
    #[doc(hidden)]
    fn transport(&self) -> &TransportConfig;
    /// How to read the body of an answer with this head.
    #[doc(hidden)]
    fn head(&mut self, status: StatusCode, headers: &HeaderMap) -> Result<Read, Error>;
    /// The answer whose whole body was read.
    #[doc(hidden)]
    fn whole(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self::Output, Error>;
    /// The result of a streamed body that passed its checks.
    #[doc(hidden)]
    fn streamed(&mut self, _verified: Verified) -> Result<Self::Output, Error> {
        Err(Error::Config("this call has no streamed answer".into()))
    }
}

/// Any NXCloud [`Operation`], signed with a fresh `ts` per attempt.
#[derive(Debug)]
pub struct Api<'a, O: ?Sized> {
    op: &'a O,
    config: &'a ClientConfig,
}

impl<'a, O: Operation + ?Sized> Api<'a, O> {
    pub(super) fn new(op: &'a O, config: &'a ClientConfig) -> Self {
        Self { op, config }
    }
}

impl<O: Operation + ?Sized> sealed::Sealed for Api<'_, O> {}

impl<O: Operation + ?Sized> Kind for Api<'_, O> {
    type Output = O::Output;

    fn request(
        &mut self,
        ts: Timestamp,
        _: Option<&Token>,
    ) -> Result<http::Request<OutgoingBody>, Error> {
        let config = self.config;
        Ok(operation::build_request(
            self.op,
            &config.base_url,
            &config.credentials,
            ts,
        )?)
    }

    fn origin(&self) -> Option<http::Uri> {
        self.config.base_url.join("/").ok()
    }

    fn transport(&self) -> &TransportConfig {
        &self.config.transport
    }

    fn head(&mut self, _: StatusCode, _: &HeaderMap) -> Result<Read, Error> {
        Ok(Read::Whole {
            max: self.config.transport.max_answer_bytes,
        })
    }

    fn whole(
        &mut self,
        status: StatusCode,
        _: &HeaderMap,
        body: &[u8],
    ) -> Result<O::Output, Error> {
        Ok(operation::parse_response(self.op, status, body)?)
    }
}

/// Whose credentials an On-Premises call carries.
#[derive(Clone, Copy)]
enum Credential<'a> {
    /// A user name and password (a [`onprem::Login`]).
    Basic {
        username: &'a str,
        password: &'a AccessSecret,
    },
    /// The client's token ([`super::Step::Token`]).
    Bearer,
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Basic { .. } => "Basic",
            Credential::Bearer => "Bearer",
        })
    }
}

/// Any [`OnPremOperation`] whose answer is read whole.
#[derive(Debug)]
pub struct OnPrem<'a, O: ?Sized> {
    op: &'a O,
    config: &'a OnPremConfig,
    credential: Credential<'a>,
}

impl<'a, O: OnPremOperation + ?Sized> OnPrem<'a, O> {
    pub(super) fn bearer(op: &'a O, config: &'a OnPremConfig) -> Self {
        Self {
            op,
            config,
            credential: Credential::Bearer,
        }
    }

    pub(super) fn basic(
        op: &'a O,
        config: &'a OnPremConfig,
        username: &'a str,
        password: &'a AccessSecret,
    ) -> Self {
        Self {
            op,
            config,
            credential: Credential::Basic { username, password },
        }
    }
}

/// The `Authorization` of an attempt.
fn auth<'a>(credential: Credential<'a>, token: Option<&'a Token>) -> Result<Auth<'a>, Error> {
    match (credential, token) {
        (Credential::Basic { username, password }, _) => Ok(Auth::Basic {
            username,
            password: password.expose(),
        }),
        (Credential::Bearer, Some(token)) => Ok(Auth::Bearer(token)),
        (Credential::Bearer, None) => Err(Error::Config("no On-Premises token to send".into())),
    }
}

impl<O: OnPremOperation + ?Sized> sealed::Sealed for OnPrem<'_, O> {}

impl<O: OnPremOperation + ?Sized> Kind for OnPrem<'_, O> {
    type Output = O::Output;

    fn request(
        &mut self,
        _: Timestamp,
        token: Option<&Token>,
    ) -> Result<http::Request<OutgoingBody>, Error> {
        let auth = auth(self.credential, token)?;
        Ok(onprem::build_request(self.op, &self.config.base_url, auth)?)
    }

    fn bearer(&self) -> bool {
        matches!(self.credential, Credential::Bearer)
    }

    fn origin(&self) -> Option<http::Uri> {
        self.config.base_url.join("/").ok()
    }

    fn transport(&self) -> &TransportConfig {
        &self.config.transport
    }

    fn head(&mut self, _: StatusCode, _: &HeaderMap) -> Result<Read, Error> {
        Ok(Read::Whole {
            max: self.config.transport.max_answer_bytes,
        })
    }

    fn whole(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<O::Output, Error> {
        Ok(onprem::parse_response(self.op, status, headers, body)?)
    }
}

/// The most bytes of a refused download's body read for its message.
pub const DOWNLOAD_ERROR_BODY: u64 = 64 * 1024;

/// An NXCloud download: a plain GET of a pre-signed URL, refreshed once when it has expired
/// or the storage refuses it with 403.
#[derive(Debug)]
pub struct Fetch<'a> {
    info: MediaInfo,
    transport: &'a TransportConfig,
    /// A fresh URL was fetched already, or none can be (the caller gave only a URL).
    refreshed: bool,
}

impl<'a> Fetch<'a> {
    pub(super) fn new(info: MediaInfo, transport: &'a TransportConfig, refresh: bool) -> Self {
        Self {
            info,
            transport,
            refreshed: !refresh,
        }
    }
}

impl sealed::Sealed for Fetch<'_> {}

impl Kind for Fetch<'_> {
    type Output = Verified;

    /// A GET of the URL, refused before any byte is sent when it is plain `http` to a host
    /// that is not loopback (the URL's query is a credential) unless insecure HTTP is allowed.
    fn request(
        &mut self,
        _: Timestamp,
        _: Option<&Token>,
    ) -> Result<http::Request<OutgoingBody>, Error> {
        let url = self.info.url();
        let refuse = |reason| {
            Error::InvalidInput(InvalidInput::Url {
                url: url.to_string(),
                reason,
            })
        };
        if !url.is_https() && !url.is_loopback() && !self.transport.allow_insecure_http {
            return Err(refuse(
                "it is plain http to a host that is not loopback, which would send its signature in clear; use https, or allow insecure http explicitly",
            ));
        }
        http::Request::get(url.expose())
            .body(OutgoingBody::Empty)
            .map_err(|_| refuse("it is not a valid URL"))
    }

    fn wants_fresh_url(&mut self, refused: Option<StatusCode>, now: Timestamp) -> bool {
        let wanted =
            crate::download::needs_fresh_url(self.info.url(), refused, now, self.refreshed);
        self.refreshed |= wanted;
        wanted
    }

    fn refreshed(&mut self, info: MediaInfo) {
        self.info = info;
    }

    fn url(&self) -> Option<&DownloadUrl> {
        Some(self.info.url())
    }

    fn origin(&self) -> Option<http::Uri> {
        self.info.url().expose().parse().ok()
    }

    fn transport(&self) -> &TransportConfig {
        self.transport
    }

    /// Only `200` is the whole file; any other 2xx (`206 Partial Content`, `204 No Content`)
    /// is refused without reading its body; an error status's body is read (at most
    /// [`DOWNLOAD_ERROR_BODY`] bytes) for its message.
    fn head(&mut self, status: StatusCode, _: &HeaderMap) -> Result<Read, Error> {
        match status {
            StatusCode::OK => Ok(Read::Stream),
            s if s.is_success() => Err(not_whole(s)),
            _ => Ok(Read::Whole {
                max: DOWNLOAD_ERROR_BODY,
            }),
        }
    }

    fn whole(&mut self, status: StatusCode, _: &HeaderMap, body: &[u8]) -> Result<Verified, Error> {
        Err(Error::Response(ResponseError::Http {
            status,
            snippet: Snippet::of(body),
        }))
    }

    fn streamed(&mut self, verified: Verified) -> Result<Verified, Error> {
        Ok(verified)
    }
}

/// The error for a success status other than `200`: not the whole file.
pub(crate) fn not_whole(status: StatusCode) -> Error {
    Error::Response(ResponseError::malformed(
        status,
        "a media download must be answered 200 with the whole file; this answer is not it (ranges are never asked for)",
        b"",
    ))
}

/// An On-Premises retrieve (`GET /v1/media/{id}`): the file streamed, or Meta's error.
#[derive(Debug)]
pub struct Retrieve<'a> {
    op: &'a RetrieveMedia,
    config: &'a OnPremConfig,
    media: Option<onprem::RetrievedMedia>,
}

impl<'a> Retrieve<'a> {
    pub(super) fn new(op: &'a RetrieveMedia, config: &'a OnPremConfig) -> Self {
        Self {
            op,
            config,
            media: None,
        }
    }
}

impl sealed::Sealed for Retrieve<'_> {}

impl Kind for Retrieve<'_> {
    type Output = Retrieved;

    fn request(
        &mut self,
        _: Timestamp,
        token: Option<&Token>,
    ) -> Result<http::Request<OutgoingBody>, Error> {
        let auth = auth(Credential::Bearer, token)?;
        Ok(onprem::build_request(self.op, &self.config.base_url, auth)?)
    }

    fn bearer(&self) -> bool {
        true
    }

    fn origin(&self) -> Option<http::Uri> {
        self.config.base_url.join("/").ok()
    }

    fn transport(&self) -> &TransportConfig {
        &self.config.transport
    }

    fn head(&mut self, status: StatusCode, headers: &HeaderMap) -> Result<Read, Error> {
        match self.op.classify(status, headers)? {
            RetrieveHead::Media(media) => {
                self.media = Some(media);
                Ok(Read::Stream)
            }
            RetrieveHead::Error { max_body, .. } => Ok(Read::Whole {
                max: max_body as u64,
            }),
        }
    }

    fn whole(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Retrieved, Error> {
        Err(Error::Response(self.op.answer_error(status, headers, body)))
    }

    fn streamed(&mut self, verified: Verified) -> Result<Retrieved, Error> {
        let media = self.media.take().unwrap_or(onprem::RetrievedMedia {
            content_type: None,
            content_length: None,
        });
        Ok(Retrieved { media, verified })
    }
}
