//! What a user would write instead of the SDK (item 8): NXCloud's getMedia over reqwest or ureq,
//! with the signature and the JSON envelope done by hand, and a verified download over reqwest.
//!
//! Written the way a competent user of those crates writes it after reading the vendor's
//! signing page, and on purpose **without nx-protocol**: serde derive structs for the body and
//! the answer, the string to sign concatenated and MD5'd, a fresh `ts` and signature per
//! request, the URL parsed once. [`crate::peers::self_test`] proves these clients sign exactly
//! what nx-protocol signs, against the strict sandbox and against `nx_protocol::sign`.

use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

/// The account a hand-written client signs with.
#[derive(Clone)]
pub struct Account {
    /// The public key id (`accessKey` header).
    pub access_key: String,
    /// The secret (never sent).
    pub access_secret: String,
    /// The merchant's WhatsApp number.
    pub business_phone: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("access_key", &self.access_key)
            .field("business_phone", &self.business_phone)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct GetMediaBody<'a> {
    business_phone: &'a str,
    #[serde(rename = "Media-ID")]
    media_id: &'a str,
    messaging_product: &'a str,
}

/// NXCloud's answer envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    code: i64,
    message: String,
    data: Option<T>,
}

/// getMedia's `data`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct Media {
    /// e.g. `image/jpeg`.
    pub mime_type: String,
    /// The file's name.
    pub file_name: String,
    /// The pre-signed download URL.
    pub url: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is pre-signed: a secret until it expires.
        f.debug_struct("Media")
            .field("mime_type", &self.mime_type)
            .field("file_name", &self.file_name)
            .finish_non_exhaustive()
    }
}

/// NXCloud's signature: lower-case hex MD5 of
/// `accessKey=..&action=..&bizType=..&ts=..[&body=<json>]&accessSecret=..` (the four headers in
/// ASCII order; the body segment only for a non-empty JSON body).
pub fn sign(
    access_key: &str,
    action: &str,
    biz_type: &str,
    ts: &str,
    body: &[u8],
    access_secret: &str,
) -> String {
    let mut text = Vec::with_capacity(96 + body.len() + access_secret.len());
    // Writing into a Vec cannot fail.
    let _ = write!(
        text,
        "accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}"
    );
    if !body.is_empty() {
        text.extend_from_slice(b"&body=");
        text.extend_from_slice(body);
    }
    text.extend_from_slice(b"&accessSecret=");
    text.extend_from_slice(access_secret.as_bytes());
    hex::encode(Md5::digest(&text))
}

/// Milliseconds since the Unix epoch, as NXCloud's `ts` wants them.
fn now_ms() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

/// The body, `ts` and `sign` of one getMedia request.
struct Signed {
    body: Vec<u8>,
    ts: String,
    sign: String,
}

fn sign_get_media(account: &Account, media_id: &str) -> Result<Signed, String> {
    let body = serde_json::to_vec(&GetMediaBody {
        business_phone: &account.business_phone,
        media_id,
        messaging_product: "whatsapp",
    })
    .map_err(|e| e.to_string())?;
    let ts = now_ms();
    let sign = sign(
        &account.access_key,
        "getMedia",
        "2",
        &ts,
        &body,
        &account.access_secret,
    );
    Ok(Signed { body, ts, sign })
}

/// Reads getMedia's answer: HTTP success, envelope code 0, the media's fields.
fn parse_media(status: u16, answer: &[u8]) -> Result<Media, String> {
    if !(200..300).contains(&status) {
        return Err(format!("getMedia answered HTTP {status}"));
    }
    let envelope: Envelope<Media> =
        serde_json::from_slice(answer).map_err(|e| format!("getMedia's answer: {e}"))?;
    if envelope.code != 0 {
        return Err(format!(
            "getMedia failed: code {} ({})",
            envelope.code, envelope.message
        ));
    }
    envelope
        .data
        .ok_or_else(|| "getMedia answered no data".to_owned())
}

/// reqwest needs a rustls crypto provider installed once per process (its
/// `rustls-no-provider` feature); ring is the one the SDK's rustls uses.
fn install_crypto_provider() {
    // Err means one is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest error's text without its URL (a download URL is pre-signed: a secret).
fn reqwest_error(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// A reqwest client with its defaults.
pub fn reqwest_client() -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())
}

/// getMedia over reqwest, signed and parsed by hand.
#[derive(Clone, Debug)]
pub struct ReqwestGetMedia {
    client: reqwest::Client,
    url: reqwest::Url,
    account: Account,
}

impl ReqwestGetMedia {
    /// A client for `base` (e.g. `https://api2.nxcloud.com`) signing as `account`.
    pub fn new(base: &str, account: Account) -> Result<Self, String> {
        let url = reqwest::Url::parse(&format!("{}/api/wa/getMedia", base.trim_end_matches('/')))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client: reqwest_client()?,
            url,
            account,
        })
    }

    /// getMedia for `media_id`.
    pub async fn get_media(&self, media_id: &str) -> Result<Media, String> {
        let signed = sign_get_media(&self.account, media_id)?;
        let response = self
            .client
            .post(self.url.clone())
            .header("accessKey", &self.account.access_key)
            .header("ts", &signed.ts)
            .header("bizType", "2")
            .header("action", "getMedia")
            .header("sign", &signed.sign)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(signed.body)
            .send()
            .await
            .map_err(reqwest_error)?;
        let status = response.status().as_u16();
        let answer = response.bytes().await.map_err(reqwest_error)?;
        parse_media(status, &answer)
    }
}

/// getMedia over ureq, signed and parsed by hand.
#[derive(Clone, Debug)]
pub struct UreqGetMedia {
    agent: ureq::Agent,
    url: http::Uri,
    account: Account,
}

impl UreqGetMedia {
    /// A client for `base` signing as `account`, on `agent` (e.g. `Agent::new_with_defaults()`).
    pub fn new(base: &str, account: Account, agent: ureq::Agent) -> Result<Self, String> {
        let url = format!("{}/api/wa/getMedia", base.trim_end_matches('/'))
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        Ok(Self {
            agent,
            url,
            account,
        })
    }

    /// getMedia for `media_id`.
    pub fn get_media(&self, media_id: &str) -> Result<Media, String> {
        let signed = sign_get_media(&self.account, media_id)?;
        let mut response = self
            .agent
            .post(self.url.clone())
            .header("accessKey", &self.account.access_key)
            .header("ts", &signed.ts)
            .header("bizType", "2")
            .header("action", "getMedia")
            .header("sign", &signed.sign)
            .content_type("application/json")
            .send(&signed.body[..])
            .map_err(|e| e.to_string())?;
        let answer = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        parse_media(response.status().as_u16(), &answer)
    }
}

/// Downloads `url` into `path` over reqwest, hashing every chunk with SHA-256 as it passes, and
/// compares the digest with `expected` (a mismatch removes the file). With `durable`, writes
/// to `<path>.part`, fsyncs, then renames, the guarantees the SDK gives. Returns the length.
pub async fn reqwest_download(
    client: &reqwest::Client,
    url: &str,
    path: &Path,
    expected: &[u8; 32],
    durable: bool,
) -> Result<u64, String> {
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(reqwest_error)?;
    let part = if durable {
        path.with_extension("part")
    } else {
        path.to_owned()
    };
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let copied = async {
        while let Some(chunk) = response.chunk().await.map_err(reqwest_error)? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| e.to_string())?;
            len += chunk.len() as u64;
        }
        file.flush().await.map_err(|e| e.to_string())?;
        if durable {
            file.sync_all().await.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    }
    .await;
    drop(file);
    let verified = copied.and_then(|()| {
        if hasher.finalize()[..] == expected[..] {
            Ok(())
        } else {
            Err("the downloaded bytes' SHA-256 does not match".to_owned())
        }
    });
    if let Err(e) = verified {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    if durable {
        tokio::fs::rename(&part, path)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(len)
}
