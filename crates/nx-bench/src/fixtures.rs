//! Inputs every benchmark shares: the account, the getMedia body padded to a size, a custom
//! operation carrying it, pre-built requests, and the pattern bytes downloads serve.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use nx_protocol::operation::{BaseUrl, Operation, RequestBody, build_request, deserialize_data};
use nx_protocol::wa::{GetMedia, MediaInfo};
use nx_protocol::{
    BizType, Credentials, DataError, InvalidInput, OutgoingBody, StreamedBody, Timestamp,
};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The access key every benchmark signs with (the sandbox's demo account).
pub const ACCESS_KEY: &str = nx_sandbox::DEMO_ACCESS_KEY;
/// The secret every benchmark signs with.
pub const ACCESS_SECRET: &str = nx_sandbox::DEMO_ACCESS_SECRET;
/// The business phone every benchmark uses.
pub const PHONE: &str = nx_sandbox::DEMO_BUSINESS_PHONE;
/// The media id the fixed-answer server is asked about.
pub const MEDIA_ID: &str = "fd81acff-eea8-4d9d-acc9-6c62904d6615";
/// A fixed `ts` for requests that are signed once and sent many times.
pub const FIXED_TS: u64 = 1_700_000_000_000;

/// The credentials of [`ACCESS_KEY`].
pub fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, ACCESS_SECRET)
}

/// The tokio runtime the async clients run on: 2 workers, as many as the machine's cores.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// nx-async with the bench account against `base`, defaults otherwise.
pub fn async_client(base: &str) -> Result<nx_async::Client, String> {
    nx_async::Client::builder()
        .credentials(ACCESS_KEY, ACCESS_SECRET)
        .base_url(base)
        .build()
        .map_err(|e| e.to_string())
}

/// nx-blocking with the bench account against `base`, defaults otherwise.
pub fn blocking_client(base: &str) -> Result<nx_blocking::Client, String> {
    nx_blocking::Client::builder()
        .credentials(ACCESS_KEY, ACCESS_SECRET)
        .base_url(base)
        .build()
        .map_err(|e| e.to_string())
}

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Timestamp::from_millis(ms)
}

/// A getMedia JSON body for `media_id` padded with a `pad` field to exactly `len` bytes (or
/// the unpadded body, when `len` is smaller than it).
pub fn padded_body(media_id: &str, len: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"business_phone":"{PHONE}","Media-ID":"{media_id}","messaging_product":"whatsapp","pad":""#
    );
    let tail = "\"}";
    let fill = len.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(head.len() + fill + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + fill, b'x');
    body.extend_from_slice(tail.as_bytes());
    body
}

/// getMedia with its JSON body padded to a size (an extra `pad` field, which the sandbox
/// ignores): shows how the cost of signing and verifying grows with the body.
#[derive(Clone, Debug)]
pub struct PaddedGetMedia {
    body: Bytes,
}

impl PaddedGetMedia {
    /// getMedia for `media_id` with a body of `len` bytes.
    pub fn new(media_id: &str, len: usize) -> Self {
        Self {
            body: Bytes::from(padded_body(media_id, len)),
        }
    }

    /// The body's length.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }
}

impl Operation for PaddedGetMedia {
    type Output = MediaInfo;

    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        "getMedia"
    }
    fn path(&self) -> &str {
        "/api/wa/getMedia"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        Ok(RequestBody::Json(self.body.clone()))
    }
    fn parse_data(&self, data: Option<&RawValue>) -> Result<MediaInfo, DataError> {
        deserialize_data(data)
    }
}

/// A request signed once, sent as it is by the raw baselines.
#[derive(Clone, Debug)]
pub struct Prebuilt {
    /// The method.
    pub method: Method,
    /// The URL.
    pub uri: Uri,
    /// Every header the SDK sends (NXCloud's, Content-Type, Content-Length, User-Agent).
    pub headers: HeaderMap,
    /// The bytes before the streamed part (the whole body when nothing is streamed).
    pub head: Bytes,
    /// How many bytes are streamed from a file between `head` and `tail`.
    pub stream_len: u64,
    /// The bytes after the streamed part.
    pub tail: Bytes,
}

impl Prebuilt {
    /// Signs `op` once for `base`, exactly as the SDK does, adding `user_agent`.
    pub fn new<O: Operation>(op: &O, base: &str, user_agent: &str) -> Result<Self, String> {
        let base = BaseUrl::parse(base).map_err(|e| e.to_string())?;
        let request = build_request(op, &base, &credentials(), Timestamp::from_millis(FIXED_TS))
            .map_err(|e| e.to_string())?;
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_str(user_agent).map_err(|e| e.to_string())?,
        );
        let (head, stream_len, tail) = match body {
            OutgoingBody::Empty => (Bytes::new(), 0, Bytes::new()),
            OutgoingBody::Bytes(bytes) => (bytes, 0, Bytes::new()),
            OutgoingBody::Streamed(StreamedBody {
                head,
                stream_len,
                tail,
            }) => (head, stream_len, tail),
        };
        Ok(Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            head,
            stream_len,
            tail,
        })
    }

    /// The getMedia request of the request benchmarks.
    pub fn get_media(base: &str, user_agent: &str) -> Result<Self, String> {
        Self::new(&GetMedia::new(PHONE, MEDIA_ID), base, user_agent)
    }

    /// A request with these parts and `body`.
    pub fn request<B>(&self, body: B) -> http::Request<B> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Size of the chunk the download server repeats.
pub const PATTERN_CHUNK: usize = 64 * 1024;

/// The bytes the download server repeats: not constant, so nothing can shortcut them.
pub fn pattern_chunk() -> Bytes {
    (0..PATTERN_CHUNK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// The SHA-256 of the first `len` bytes of the repeated pattern.
pub fn pattern_sha256(len: u64) -> [u8; 32] {
    let chunk = pattern_chunk();
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    hasher.finalize().into()
}

/// Writes the first `len` bytes of the pattern to `path`.
pub fn write_pattern_file(path: &std::path::Path, len: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let chunk = pattern_chunk();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Parses a size like `1024`, `64K`, `16M` or `1G` (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    Ok(n * scale)
}

/// A size in the largest binary unit that divides it, e.g. `256 MiB`.
pub fn size_text(len: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if len >= 1 << shift && len.is_multiple_of(1 << shift) {
            return format!("{} {unit}", len >> shift);
        }
    }
    format!("{len} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_sizes_and_patterns() {
        for len in [1024, 65536, 4000] {
            let body = padded_body(MEDIA_ID, len);
            assert_eq!(body.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["Media-ID"], MEDIA_ID);
        }
        assert!(padded_body(MEDIA_ID, 0).len() > 100);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1X").is_err());
        assert_eq!(size_text(256 << 20), "256 MiB");
        assert_eq!(size_text(1 << 30), "1 GiB");
        let chunk = pattern_chunk();
        let mut both = chunk.to_vec();
        both.extend_from_slice(&chunk[..10]);
        assert_eq!(
            pattern_sha256(both.len() as u64),
            <[u8; 32]>::from(Sha256::digest(&both))
        );
    }
}
