//! The media endpoints: upload, retrieve, delete and retry-download.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use crate::body::StreamedBody;
use crate::download::{DownloadCheck, IntegrityError, Verified};
use crate::error::{DataError, InvalidInput, ResponseError, Snippet};
use crate::onprem::operation::{MAX_ERROR_BODY, OnPremBody, OnPremOperation, media_path};
use crate::wa::MediaKind;

/// The id part of an answer's `media` / `media_items` entries.
#[derive(Deserialize)]
struct IdEntry {
    id: String,
}

fn first_id(entries: Vec<IdEntry>, field: &str) -> Result<String, DataError> {
    let id = entries
        .into_iter()
        .next()
        .ok_or_else(|| DataError::invalid(format!("`{field}` is empty")))?
        .id;
    if id.is_empty() {
        return Err(DataError::invalid(format!("`{field}` holds an empty id")));
    }
    Ok(id)
}

/// `POST /v1/media`: uploads a file of known length, its raw bytes as the body.
///
/// The `Content-Type` is the file's real MIME type; it and the length are checked against
/// WhatsApp's media table ([`MediaKind::check`]) before anything is sent. The body is
/// [`crate::OutgoingBody::Streamed`] with nothing around the file: the transport copies exactly
/// `len` bytes from the caller's source.
///
/// ```
/// use nx_protocol::onprem::{build_request, Auth, Token, UploadMedia};
/// use nx_protocol::operation::BaseUrl;
/// use nx_protocol::{OutgoingBody, StreamedBody};
/// let base = BaseUrl::parse("https://wa.example.internal:9090").unwrap();
/// let token = Token::from_parts("eyJhbGciOi", None);
/// let request = build_request(&UploadMedia::new("image/jpeg", 2048), &base, Auth::Bearer(&token)).unwrap();
/// assert_eq!(request.headers()["content-type"], "image/jpeg");
/// assert_eq!(request.headers()["content-length"], "2048");
/// assert_eq!(request.body(), &OutgoingBody::Streamed(StreamedBody::raw(2048)));
/// // Larger than the 100 KB sticker limit: refused before any byte is sent.
/// assert!(build_request(&UploadMedia::new("image/webp", 200 << 10), &base, Auth::Bearer(&token)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadMedia {
    content_type: String,
    len: u64,
}

impl UploadMedia {
    /// Upload `len` bytes of the MIME type `content_type`.
    pub fn new(content_type: impl Into<String>, len: u64) -> Self {
        Self {
            content_type: content_type.into(),
            len,
        }
    }

    /// The MIME type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty (refused when the body is built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The media kind, if the MIME type is in the table.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::from_mime(&self.content_type)
    }
}

/// What an upload answers: the new media's id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadedMedia {
    /// The media id, for sending the media or for the other media calls.
    pub id: String,
}

impl UploadedMedia {
    /// The answer for the media `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

impl OnPremOperation for UploadMedia {
    type Output = UploadedMedia;

    fn method(&self) -> Method {
        Method::POST
    }
    fn path(&self) -> Result<String, InvalidInput> {
        Ok("/v1/media".to_owned())
    }
    fn body(&self) -> Result<OnPremBody, InvalidInput> {
        // Reading: Meta states the limits "after processing", which a client cannot predict;
        // the file is checked as sent against the same limits, so that a file the installation
        // would most likely refuse fails here, before its bytes travel.
        MediaKind::check(&self.content_type, self.len)?;
        Ok(OnPremBody::Raw {
            content_type: self.content_type.clone(),
            body: StreamedBody::raw(self.len),
        })
    }
    fn parse_output(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Result<UploadedMedia, DataError> {
        #[derive(Deserialize)]
        struct Answer {
            media: Vec<IdEntry>,
        }
        let answer: Answer =
            serde_json::from_slice(body).map_err(|e| DataError::json("the upload answer", &e))?;
        first_id(answer.media, "media").map(|id| UploadedMedia { id })
    }
    /// A repeated upload stores the file twice, but that is harmless (an unused media file is
    /// deleted by the client eventually); losing an upload is not. So uploads are retried,
    /// re-streamed from the start.
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// `GET /v1/media/{id}`: downloads a media file. The success body is the file itself, so it is
/// never handed to nx-protocol: a transport asks [`RetrieveMedia::classify`] about the answer's
/// head and either streams the body through a [`DownloadCheck`] or reads a bounded error body.
///
/// ```
/// use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
/// use http::{HeaderMap, StatusCode};
/// use nx_protocol::download::DownloadCheck;
/// use nx_protocol::onprem::{parse_response, RetrieveHead, RetrieveMedia};
///
/// let op = RetrieveMedia::new("f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68");
/// let mut headers = HeaderMap::new();
/// headers.insert(CONTENT_TYPE, "image/jpeg".parse().unwrap());
/// headers.insert(CONTENT_LENGTH, "5".parse().unwrap());
/// match op.classify(StatusCode::OK, &headers).unwrap() {
///     RetrieveHead::Media(media) => {
///         assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
///         let mut check = media.begin_check(DownloadCheck::new(16 << 20)).unwrap();
///         check.update(b"hello").unwrap(); // chunk by chunk, as the bytes arrive
///         assert_eq!(check.finish().unwrap().len, 5);
///     }
///     RetrieveHead::Error { .. } => unreachable!(),
/// }
///
/// // A missing id: 404 with no body.
/// let RetrieveHead::Error { status, max_body } = op.classify(StatusCode::NOT_FOUND, &HeaderMap::new()).unwrap()
/// else { unreachable!() };
/// let body: &[u8] = b""; // read at most `max_body` bytes
/// assert!(body.len() <= max_body);
/// let err = parse_response(&op, status, &HeaderMap::new(), body).unwrap_err();
/// assert!(err.is_not_found());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrieveMedia {
    id: String,
}

impl RetrieveMedia {
    /// Retrieve the media `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// The media id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What to do with an answer whose status and headers have arrived: stream a 2xx body as
    /// the media file, or read at most [`MAX_ERROR_BODY`] bytes of anything else and pass them
    /// to [`crate::onprem::parse_response`], which turns them into the error (a 404 with no
    /// body into one whose [`ResponseError::is_not_found`] is true).
    ///
    /// Only `200` is the whole file: `206 Partial Content`, `204 No Content` and any other 2xx
    /// are refused as [`ResponseError::Malformed`], as is a 200 whose `Content-Length` is not a
    /// number.
    /// A 2xx whose `Content-Type` is `application/json` is not a media file (WhatsApp's media
    /// table has no JSON type; a proxy or the installation answering Meta's error shape with a
    /// 200 is): it is read as an answer, like an error status.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
    /// use nx_protocol::onprem::{RetrieveHead, RetrieveMedia};
    /// let mut headers = HeaderMap::new();
    /// headers.insert(CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
    /// let head = RetrieveMedia::new("m").classify(StatusCode::OK, &headers).unwrap();
    /// assert!(matches!(head, RetrieveHead::Error { status: StatusCode::OK, .. }));
    /// headers.insert(CONTENT_TYPE, "image/jpeg".parse().unwrap());
    /// let head = RetrieveMedia::new("m").classify(StatusCode::OK, &headers).unwrap();
    /// assert!(matches!(head, RetrieveHead::Media(_)));
    /// ```
    pub fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<RetrieveHead, ResponseError> {
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !status.is_success() || json {
            return Ok(RetrieveHead::Error {
                status,
                max_body: MAX_ERROR_BODY,
            });
        }
        if status != StatusCode::OK {
            // 206, 204 or another 2xx: not the whole file (no range is ever asked for).
            return Err(ResponseError::malformed(
                status,
                "a media retrieve must be answered 200 with the whole file; this answer is not it",
                b"",
            ));
        }
        media_head(headers)
            .map(RetrieveHead::Media)
            .map_err(|error| ResponseError::bad_data(status, error, b""))
    }
}

impl RetrieveMedia {
    /// The error an answer [`RetrieveMedia::classify`] sent to [`RetrieveHead::Error`] stands
    /// for, from its body (at most `max_body` bytes; empty when it could not be read in full):
    /// Meta's error when the body is one; for a 2xx (a JSON answer), [`ResponseError::Malformed`],
    /// since JSON is not a media file; otherwise the HTTP status with a snippet of the body.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use nx_protocol::onprem::RetrieveMedia;
    /// use nx_protocol::ResponseError;
    /// let op = RetrieveMedia::new("m");
    /// let meta = br#"{"errors":[{"code":1006,"title":"Resource not found"}]}"#;
    /// assert!(op.answer_error(StatusCode::OK, &HeaderMap::new(), meta).is_not_found());
    /// let junk = op.answer_error(StatusCode::OK, &HeaderMap::new(), br#"{"id":1}"#);
    /// assert!(matches!(junk, ResponseError::Malformed { .. }));
    /// let gone = op.answer_error(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
    /// assert!(gone.is_not_found());
    /// ```
    pub fn answer_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ResponseError {
        match crate::onprem::parse_response(self, status, headers, body) {
            Err(error) => error,
            Ok(_) if status.is_success() => ResponseError::malformed(
                status,
                "a media retrieve was answered with JSON (`application/json`), not a media file",
                body,
            ),
            Ok(_) => ResponseError::Http {
                status,
                snippet: Snippet::of(body),
            },
        }
    }
}

/// What [`RetrieveMedia::classify`] says about an answer's head.
///
/// Exhaustive on purpose: a transport acts on every kind of head, so a new one must fail to compile rather than fall into a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetrieveHead {
    /// A 2xx: the body is the media file. Stream it through
    /// [`RetrievedMedia::begin_check`]'s [`DownloadCheck`] and finish the check at its end.
    Media(RetrievedMedia),
    /// Not a success: read at most `max_body` bytes of the body and pass them, with `status` and
    /// the headers, to [`crate::onprem::parse_response`] to get the error.
    Error {
        /// The answer's status.
        status: StatusCode,
        /// The most bytes of the body to read.
        max_body: usize,
    },
}

/// The head of a successful retrieve: what the body is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetrievedMedia {
    /// The file's MIME type, as the server sent it (`None` if it sent none, or one that is not
    /// visible ASCII).
    pub content_type: Option<String>,
    /// The body's announced length, if the server sent a `Content-Length`.
    pub content_length: Option<u64>,
}

impl RetrievedMedia {
    /// A head with this MIME type and announced length.
    pub fn new(content_type: Option<String>, content_length: Option<u64>) -> Self {
        Self {
            content_type,
            content_length,
        }
    }

    /// Starts `check` (configured by the caller: size cap, expected SHA-256) with the announced
    /// length, refusing a body announced larger than the cap before a byte is read.
    pub fn begin_check(&self, mut check: DownloadCheck) -> Result<DownloadCheck, IntegrityError> {
        check.begin(self.content_length)?;
        Ok(check)
    }
}

/// A finished, verified retrieve: what the server said the file is, and what arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retrieved {
    /// The answer's head (MIME type, announced length).
    pub media: RetrievedMedia,
    /// The checked bytes (length, SHA-256 when computed).
    pub verified: Verified,
}

impl Retrieved {
    /// What a transport returns once `verified` bytes of the file announced by `media` arrived.
    pub fn new(media: RetrievedMedia, verified: Verified) -> Self {
        Self { media, verified }
    }
}

fn media_head(headers: &HeaderMap) -> Result<RetrievedMedia, DataError> {
    let content_length = crate::head::announced_length(headers).map_err(DataError::invalid)?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(RetrievedMedia {
        content_type,
        content_length,
    })
}

impl OnPremOperation for RetrieveMedia {
    type Output = RetrievedMedia;

    fn method(&self) -> Method {
        Method::GET
    }
    fn path(&self) -> Result<String, InvalidInput> {
        media_path(&self.id, "")
    }
    fn body(&self) -> Result<OnPremBody, InvalidInput> {
        Ok(OnPremBody::Empty)
    }
    /// Reads the head only: the body is the file, which the transport streams.
    fn parse_output(
        &self,
        _status: StatusCode,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Result<RetrievedMedia, DataError> {
        media_head(headers)
    }
}

/// `DELETE /v1/media/{id}`: deletes a media file from the client's storage. Success is 200 with
/// no body or the usual `meta` object. Retried like any idempotent call; if a first attempt
/// deleted the file and its answer was lost, the retry is answered 404 / 1006: gone either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMedia {
    id: String,
}

impl DeleteMedia {
    /// Delete the media `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// The media id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl OnPremOperation for DeleteMedia {
    type Output = ();

    fn method(&self) -> Method {
        Method::DELETE
    }
    fn path(&self) -> Result<String, InvalidInput> {
        media_path(&self.id, "")
    }
    fn body(&self) -> Result<OnPremBody, InvalidInput> {
        Ok(OnPremBody::Empty)
    }
    fn parse_output(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), DataError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(DataError::invalid(
                "a delete answer's body is a JSON object or nothing",
            )),
            Err(e) => Err(DataError::json("the delete answer", &e)),
        }
    }
    /// Deleting twice leaves the media as deleted as deleting once (the second answer is a
    /// not-found, which the caller may treat as done).
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// `GET /v1/media/{id}/download`: asks the client to download and store a media file a
/// customer sent again (within WhatsApp's 14-day window).
///
/// The answer only acknowledges the request; the outcome arrives later as a webhook
/// notification ([`crate::onprem::parse_media_notification`]), which
/// [`crate::onprem::PendingDownloads`] matches to the ids asked for.
///
/// ```
/// use nx_protocol::onprem::{build_request, parse_response, Auth, RetryDownload, Token};
/// use nx_protocol::operation::BaseUrl;
/// let base = BaseUrl::parse("https://wa.example.internal:9090").unwrap();
/// let token = Token::from_parts("eyJhbGciOi", None);
/// let op = RetryDownload::new("f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68");
/// let request = build_request(&op, &base, Auth::Bearer(&token)).unwrap();
/// assert_eq!(request.method(), http::Method::GET);
/// assert_eq!(
///     request.uri(),
///     "https://wa.example.internal:9090/v1/media/f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68/download"
/// );
/// assert_eq!(request.headers()["authorization"], "Bearer eyJhbGciOi");
///
/// let answer = br#"{"media_items":[{"id":"f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68"}],"meta":{"api_status":"stable","version":"3.0.0.0"}}"#;
/// let ack = parse_response(&op, http::StatusCode::OK, &http::HeaderMap::new(), answer).unwrap();
/// assert_eq!(ack.ids, ["f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryDownload {
    id: String,
}

impl RetryDownload {
    /// Ask the client to download the media `id` again.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// The media id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The acknowledgement of a [`RetryDownload`]: the ids whose download was started.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadRequested {
    /// The media ids of `media_items`, in order.
    pub ids: Vec<String>,
}

impl DownloadRequested {
    /// The acknowledgement of these ids.
    pub fn new(ids: Vec<String>) -> Self {
        Self { ids }
    }
}

impl OnPremOperation for RetryDownload {
    type Output = DownloadRequested;

    fn method(&self) -> Method {
        Method::GET
    }
    fn path(&self) -> Result<String, InvalidInput> {
        media_path(&self.id, "/download")
    }
    fn body(&self) -> Result<OnPremBody, InvalidInput> {
        Ok(OnPremBody::Empty)
    }
    fn parse_output(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Result<DownloadRequested, DataError> {
        #[derive(Deserialize)]
        struct Answer {
            media_items: Vec<IdEntry>,
        }
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| DataError::json("the retry-download acknowledgement", &e))?;
        let ids: Vec<String> = answer.media_items.into_iter().map(|e| e.id).collect();
        if ids.iter().any(String::is_empty) {
            return Err(DataError::invalid("`media_items` holds an empty id"));
        }
        Ok(DownloadRequested { ids })
    }
    /// Asking twice only starts the same download twice.
    fn is_idempotent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::CONTENT_LENGTH;

    use super::*;
    use crate::OutgoingBody;
    use crate::onprem::error::{MetaCode, MetaError};
    use crate::onprem::operation::{Auth, build_request, parse_response};
    use crate::onprem::token::Token;
    use crate::operation::BaseUrl;

    fn base() -> BaseUrl {
        BaseUrl::parse("https://wa.example.internal:9090").unwrap()
    }

    fn token() -> Token {
        Token::from_parts("tok", None)
    }

    fn answer<O: OnPremOperation>(
        op: &O,
        status: u16,
        body: &[u8],
    ) -> Result<O::Output, ResponseError> {
        parse_response(
            op,
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body,
        )
    }

    /// Every id, however hostile, stays one path segment: the built URI's path is exactly
    /// `/v1/media/<encoded>` (plus `/download`), with no query or fragment.
    #[test]
    fn ids_stay_one_segment() {
        let cases = [
            ("f043afd0-f0ae-4b9c", "f043afd0-f0ae-4b9c"),
            ("../users", "..%2Fusers"),
            ("a/b?c", "a%2Fb%3Fc"),
            ("%2e%2e", "%252e%252e"),
            ("#x", "%23x"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("...", "%2E%2E%2E"),
            (".a.", ".a."),
            ("a b+c;d=e&f", "a%20b%2Bc%3Bd%3De%26f"),
            ("ü/é", "%C3%BC%2F%C3%A9"),
            ("\\x", "%5Cx"),
            ("a_b~c", "a_b~c"),
        ];
        let token = token();
        for (id, encoded) in cases {
            for (method, request) in [
                (
                    Method::GET,
                    build_request(&RetrieveMedia::new(id), &base(), Auth::Bearer(&token)),
                ),
                (
                    Method::DELETE,
                    build_request(&DeleteMedia::new(id), &base(), Auth::Bearer(&token)),
                ),
            ] {
                let request = request.unwrap();
                assert_eq!(request.method(), method);
                assert_eq!(request.uri().path(), format!("/v1/media/{encoded}"), "{id}");
                assert_eq!(request.uri().query(), None, "{id}");
                assert!(request.headers().get(CONTENT_LENGTH).is_none());
                assert!(request.headers().get(CONTENT_TYPE).is_none());
                assert_eq!(request.body(), &OutgoingBody::Empty);
            }
            let request =
                build_request(&RetryDownload::new(id), &base(), Auth::Bearer(&token)).unwrap();
            assert_eq!(
                request.uri().path(),
                format!("/v1/media/{encoded}/download"),
                "{id}"
            );
            assert_eq!(request.uri().query(), None, "{id}");
        }
    }

    #[test]
    fn bad_ids_are_refused_before_sending() {
        let long = "a".repeat(513);
        let token = token();
        for id in ["", "a\nb", "a\0", "\u{7f}", " a", long.as_str()] {
            for result in [
                build_request(&RetrieveMedia::new(id), &base(), Auth::Bearer(&token)).map(drop),
                build_request(&DeleteMedia::new(id), &base(), Auth::Bearer(&token)).map(drop),
                build_request(&RetryDownload::new(id), &base(), Auth::Bearer(&token)).map(drop),
            ] {
                assert!(
                    matches!(result, Err(InvalidInput::MediaId { .. })),
                    "{id:?}: {result:?}"
                );
            }
        }
        assert!(
            build_request(
                &RetrieveMedia::new("a".repeat(512)),
                &base(),
                Auth::Bearer(&token)
            )
            .is_ok()
        );
        // Media calls need the bearer token, not the password.
        let basic = Auth::Basic {
            username: "admin",
            password: "pw",
        };
        assert!(build_request(&RetrieveMedia::new("x"), &base(), basic).is_err());
        // A token a header cannot carry.
        let bad = Token::from_parts("t\r\nX-Evil: 1", None);
        assert!(matches!(
            build_request(&RetrieveMedia::new("x"), &base(), Auth::Bearer(&bad)),
            Err(InvalidInput::HeaderValue { .. })
        ));
    }

    #[test]
    fn uploads() {
        let token = token();
        let request = build_request(
            &UploadMedia::new("audio/ogg; codecs=opus", 1000),
            &base(),
            Auth::Bearer(&token),
        )
        .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/v1/media");
        assert_eq!(request.headers()[CONTENT_TYPE], "audio/ogg; codecs=opus");
        assert_eq!(request.headers()[CONTENT_LENGTH], "1000");
        assert_eq!(request.headers()["authorization"], "Bearer tok");
        assert_eq!(
            request.body(),
            &OutgoingBody::Streamed(StreamedBody::raw(1000))
        );

        for (mime, len) in [
            ("image/gif", 10),
            ("image/png", 0),
            ("image/png", 5 * 1024 * 1024 + 1),
            ("image/png\r\nX: y", 10),
        ] {
            assert!(
                build_request(&UploadMedia::new(mime, len), &base(), Auth::Bearer(&token)).is_err(),
                "{mime}"
            );
        }

        let op = UploadMedia::new("image/png", 10);
        let ok = answer(
            &op,
            201,
            br#"{"media":[{"id":"f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68"}],"meta":{"api_status":"stable","version":"3.0.0.0"}}"#,
        )
        .unwrap();
        assert_eq!(ok.id, "f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68");
        for bad in [
            &br#"{"media":[]}"#[..],
            br#"{"media":[{"id":""}]}"#,
            br#"{"media":{"id":"x"}}"#,
            br#"{"meta":{}}"#,
            b"",
        ] {
            assert!(matches!(
                answer(&op, 200, bad),
                Err(ResponseError::Malformed { .. })
            ));
        }
        let err = answer(
            &op,
            400,
            br#"{"meta":{},"errors":[{"code":1009,"title":"Parameter value is not valid","details":"Unsupported type"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.meta_code(), Some(MetaCode::PARAMETER_INVALID));
    }

    #[test]
    fn retrieve_heads() {
        let op = RetrieveMedia::new("id");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        let RetrieveHead::Media(media) = op.classify(StatusCode::OK, &headers).unwrap() else {
            panic!("a 200 is media")
        };
        assert_eq!(
            media,
            RetrievedMedia {
                content_type: Some("image/jpeg".into()),
                content_length: Some(3),
            }
        );
        assert_eq!(
            parse_response(&op, StatusCode::OK, &headers, b"").unwrap(),
            media
        );
        // The announced length is enforced, and so is the cap.
        let mut check = media.begin_check(DownloadCheck::new(100)).unwrap();
        check.update(b"ab").unwrap();
        assert!(matches!(
            check.finish(),
            Err(IntegrityError::LengthMismatch { .. })
        ));
        assert!(matches!(
            media.begin_check(DownloadCheck::new(2)),
            Err(IntegrityError::TooLarge { .. })
        ));

        let bare = op.classify(StatusCode::OK, &HeaderMap::new()).unwrap();
        assert_eq!(
            bare,
            RetrieveHead::Media(RetrievedMedia {
                content_type: None,
                content_length: None
            })
        );

        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert!(matches!(
            op.classify(StatusCode::OK, &headers),
            Err(ResponseError::Malformed { .. })
        ));

        for status in [404, 401, 500, 302] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                op.classify(status, &headers).unwrap(),
                RetrieveHead::Error {
                    status,
                    max_body: MAX_ERROR_BODY
                }
            );
        }

        let not_found = answer(&op, 404, b"").unwrap_err();
        assert!(matches!(
            not_found,
            ResponseError::Http {
                status: StatusCode::NOT_FOUND,
                ..
            }
        ));
        assert!(not_found.is_not_found());
        let typed = answer(
            &op,
            404,
            br#"{"errors":[{"code":1006,"title":"Resource not found"}]}"#,
        )
        .unwrap_err();
        assert!(typed.is_not_found());
        assert!(!answer(&op, 500, b"").unwrap_err().is_not_found());
        let overloaded = answer(
            &op,
            503,
            br#"{"errors":[{"code":1016,"title":"System overloaded"}]}"#,
        )
        .unwrap_err();
        assert!(!overloaded.is_not_found());
        assert!(overloaded.meta_code().unwrap().is_retryable());
    }

    #[test]
    fn deletes() {
        let op = DeleteMedia::new("id");
        for ok in [
            &b""[..],
            b"  \n",
            br#"{"meta":{"api_status":"stable","version":"3.0.0.0"}}"#,
            b"{}",
        ] {
            assert_eq!(answer(&op, 200, ok), Ok(()));
        }
        for bad in [&b"[]"[..], b"ok", b"\xff"] {
            assert!(matches!(
                answer(&op, 200, bad),
                Err(ResponseError::Malformed { .. })
            ));
        }
        assert!(answer(&op, 404, b"").unwrap_err().is_not_found());
        assert_eq!(
            answer(
                &op,
                200,
                br#"{"errors":[{"code":1014,"title":"Internal error"}]}"#
            ),
            Err(ResponseError::OnPrem {
                status: StatusCode::OK,
                error: MetaError {
                    code: MetaCode::INTERNAL_ERROR,
                    title: "Internal error".into(),
                    details: None
                }
            })
        );
    }

    #[test]
    fn retry_download_acknowledgements() {
        let op = RetryDownload::new("m1");
        let ack = answer(
            &op,
            200,
            br#"{"media_items":[{"id":"m1"},{"id":"m2","x":[]}],"meta":{"api_status":"stable","version":"3.0.0.0"}}"#,
        )
        .unwrap();
        assert_eq!(ack.ids, ["m1", "m2"]);
        assert_eq!(
            answer(&op, 200, br#"{"media_items":[]}"#).unwrap().ids,
            Vec::<String>::new()
        );
        for bad in [
            &br#"{"media_items":[{"id":""}]}"#[..],
            br#"{"media_items":[{}]}"#,
            br#"{"meta":{}}"#,
            b"",
        ] {
            assert!(matches!(
                answer(&op, 200, bad),
                Err(ResponseError::Malformed { .. })
            ));
        }
        let err = answer(
            &op,
            404,
            br#"{"meta":{"api_status":"stable","version":"3.0.0.0"},"errors":[{"code":1006,"title":"Resource not found","details":"Media not found"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ResponseError::OnPrem {
                status: StatusCode::NOT_FOUND,
                error: MetaError {
                    code: MetaCode::NOT_FOUND,
                    title: "Resource not found".into(),
                    details: Some("Media not found".into()),
                }
            }
        );
        // A 401 keeps Meta's error (the retry policy logs in again on any 401).
        assert!(matches!(
            answer(&op, 401, br#"{"errors":[{"code":1005,"title":"x"}]}"#),
            Err(ResponseError::OnPrem {
                status: StatusCode::UNAUTHORIZED,
                ..
            })
        ));
        assert!(matches!(
            answer(&op, 502, b"<html>Bad gateway</html>"),
            Err(ResponseError::Http { .. })
        ));
    }
}
