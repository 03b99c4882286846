//! The download URLs getMedia hands out, behaving like pre-signed object-storage links:
//! `GET /oss/<key>?Expires=<unix secs>&OSSAccessKeyId=<id>&Signature=<sig>`.
//!
//! `Signature` is the standard base64 of HMAC-SHA256 over `<verb>\n<Expires>\n/oss/<key>\n<id>`
//! with a key the sandbox draws at start, percent-encoded in the URL (so `+`, `/` and `=` appear
//! as `%2B`, `%2F`, `%3D`, as in real links: a client that re-encodes the query breaks it, and
//! so does one that decodes it and sends a `+` unencoded, since the query is read as form
//! encoding, `+` a space, as object storage reads it). The URL is signed for `GET` (the spec:
//! "fetched with a plain GET"), and the verb is part of what is signed, as in object storage's
//! pre-signed URLs: any other method, `HEAD` included, is 403 `SignatureDoesNotMatch`.
//! Answers: 403 with an OSS-style XML error when a parameter is missing or repeated, the key
//! id is wrong, the signature does not match (tampered, another method) or the URL has expired
//! (by the sandbox clock); 404 `NoSuchKey` when the media was deleted; otherwise 200 with the
//! bytes, streamed, with `Content-Type` and `Content-Length`. No NXCloud headers are needed.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use crate::body;
use crate::config::OSS_ACCESS_KEY_ID;
use crate::request::{query_params, single};
use crate::response::{Outcome, respond, text};
use crate::state::State;
use crate::store::Media;

/// Characters left as they are in a query value (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn mac(
    key: &[u8; 32],
    verb: &Method,
    expires: &str,
    object_key: &str,
    key_id: &str,
) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(verb.as_str().as_bytes());
    mac.update(b"\n");
    mac.update(expires.as_bytes());
    mac.update(b"\n/oss/");
    mac.update(object_key.as_bytes());
    mac.update(b"\n");
    mac.update(key_id.as_bytes());
    Some(mac)
}

/// A fresh download URL for `media`, valid for the configured lifetime.
pub(crate) fn signed_url(state: &State, media: &Media) -> String {
    let expires = state
        .clock
        .now_secs()
        .saturating_add(state.config.url_lifetime.as_secs())
        .to_string();
    let signature = mac(
        &state.oss_key,
        &Method::GET,
        &expires,
        &media.object_key,
        OSS_ACCESS_KEY_ID,
    )
    .map(|m| STANDARD.encode(m.finalize().into_bytes()))
    .unwrap_or_default();
    format!(
        "{}/oss/{}?Expires={expires}&OSSAccessKeyId={OSS_ACCESS_KEY_ID}&Signature={}",
        state.base_url,
        media.object_key,
        utf8_percent_encode(&signature, QUERY_VALUE)
    )
}

fn xml_error(status: StatusCode, code: &str, message: &str, state: &State) -> Outcome {
    let request_id = format!("{:024X}", state.random_u128() >> 32);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>{request_id}</RequestId>\n  <HostId>127.0.0.1</HostId>\n</Error>\n"
    );
    let mut response = respond(status, "application/xml", Bytes::from(xml));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-oss-request-id", v);
    }
    Outcome::new(response).note(format!("{code}: {message}"))
}

pub(crate) async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Outcome {
    // The signature is checked before the key is looked up, whatever the key looks like, as
    // object storage does for a private bucket: a request not signed for that key is 403 and
    // learns nothing of which keys exist (404 is only for a signed URL whose media is gone).
    let key = req.uri().path().strip_prefix("/oss/").unwrap_or("");
    let params = query_params(req.uri().query());
    let (Some(expires), Some(key_id), Some(signature)) = (
        single(&params, "Expires"),
        single(&params, "OSSAccessKeyId"),
        single(&params, "Signature"),
    ) else {
        return xml_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Expires, OSSAccessKeyId and Signature must each be given once.",
            state,
        );
    };
    if key_id != OSS_ACCESS_KEY_ID {
        return xml_error(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            state,
        );
    }
    let signature_ok = STANDARD
        .decode(signature.as_bytes())
        .ok()
        .zip(mac(&state.oss_key, req.method(), expires, key, key_id))
        .is_some_and(|(sig, mac)| mac.verify_slice(&sig).is_ok());
    if !signature_ok {
        return xml_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            state,
        );
    }
    let expired = expires
        .parse::<u64>()
        .map_or(true, |at| state.clock.now_secs() > at);
    if expired {
        return xml_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired.",
            state,
        );
    }
    let Some(media) = state.store.get_by_key(key) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
            state,
        );
    };
    stream_media(&media).await
}

/// 200 with the stored bytes, streamed from disk.
pub(crate) async fn stream_media(media: &Media) -> Outcome {
    let file = match tokio::fs::File::open(&media.path).await {
        Ok(file) => file,
        Err(e) => {
            return Outcome::new(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ))
            .note(format!("stored file unreadable: {e}"));
        }
    };
    let mut response = http::Response::new(body::file(file, media.len));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&media.mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(media.len));
    Outcome::new(response)
}
