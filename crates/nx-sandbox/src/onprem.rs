//! The WhatsApp Business On-Premises media API: login, media upload/retrieve/delete and
//! retry-download with its asynchronous notification.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/users/login`, good Basic credentials, body empty, `{}` or `{"new_password":".."}` | 200 `{"users":[{"token","expires_after"}]}` (`new_password` replaces the password) |
//! | login with missing, bad or repeated (`Authorization` twice) credentials | 401, code 1005 |
//! | login body not a JSON object, or `new_password` not a non-empty string | 400, code 1009 |
//! | any other `/v1` request without a valid `Authorization: Bearer` token (missing, sent twice, unknown, revoked, expired: from the second `expires_after` names) | 401, code 1005 |
//! | `POST /v1/users/logout` | 200 `{"meta":..}`, the token is revoked |
//! | `POST /v1/media`, raw bytes, `Content-Type` in the media table, within the kind's limit | 200 `{"media":[{"id"}],"meta":..}` |
//! | upload without `Content-Type` / with an empty body | 400, code 1008 |
//! | upload with `Content-Type` sent twice | 400, code 1009 |
//! | upload with a type not in the table, a multipart body, or over the kind's limit | 400, code 1009 |
//! | upload announced over 101 MiB | 413 (connection closed, body unread) |
//! | upload when the sandbox's storage is full | 500, code 1014 |
//! | `GET /v1/media/{id}` | 200 with the bytes (streamed, `Content-Type`, `Content-Length`); **404 with no body** when missing; `HEAD` answers the same head without the body |
//! | `DELETE /v1/media/{id}` | 200 `{"meta":..}`; 404 code 1006 when missing |
//! | `GET /v1/media/{id}/download` | 202, see below |
//! | any other `/v1` path or method | 404, code 1006 ("URL path not found") |
//!
//! The id is one path segment, percent-decoded (`%2F` is part of the id, never a separator); an
//! id that is not UTF-8 is not found. A path with more segments is not a media route, so
//! `/v1/media/../users` is just an unknown path, and `/v1/media/..%2Fusers` is the id `../users`.
//!
//! **Retry-download.** Which ids are "fetchable": the ids the inbound simulation created (media
//! customers sent), even after a local delete, because WhatsApp's servers keep them; the call
//! puts a deleted one back into the datastore. Such ids are acknowledged (202 Accepted) with
//! `{"media_items":[{"id"}],"meta"}` and then, asynchronously, the notification
//! `{"media_items":[{"<type>":{"id","mime_type","sha256","status":"downloaded"},"type":"<type>"}]}`
//! is POSTed to the configured callback URL. An inbound id marked as gone from WhatsApp's servers
//! ([`crate::Sandbox::expire_inbound`]) is acknowledged the same way, but its notification carries
//! `"errors":[{"code":400,"title":"Parameter not valid","details":"Media not found in the
//! datastore."}]` (the inner object kept as in Meta's example). Media uploaded with `POST
//! /v1/media` is already stored: acknowledged, notified as `downloaded`. Any other id is answered
//! at once with 404 and code 1006: our reading of "if storing could not even be started".

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::clock::format_expires_after;
use crate::config::ONPREM_API_VERSION;
use crate::log::Route;
use crate::media_table;
use crate::request::{
    MAX_UPLOAD_BODY, ReadError, Repeated, announced_len, drained, read_capped, single_header,
};
use crate::response::{Outcome, json_response, respond, too_large};
use crate::state::{State, Token};
use crate::store::{Media, NewMedia, Origin};
use crate::sync::lock;

/// The most live tokens kept; the one expiring first is dropped beyond that.
const MAX_TOKENS: usize = 10_000;

/// Meta's codes used here.
pub(crate) mod code {
    pub(crate) const ACCESS_DENIED: i64 = 1005;
    pub(crate) const NOT_FOUND: i64 = 1006;
    pub(crate) const PARAMETER_MISSING: i64 = 1008;
    pub(crate) const PARAMETER_INVALID: i64 = 1009;
    pub(crate) const INTERNAL_ERROR: i64 = 1014;
}

fn title(c: i64) -> &'static str {
    match c {
        code::ACCESS_DENIED => "Access denied",
        code::NOT_FOUND => "Resource not found",
        code::PARAMETER_MISSING => "Required parameter is missing",
        code::PARAMETER_INVALID => "Parameter value is not valid",
        code::INTERNAL_ERROR => "Internal error",
        _ => "Generic error",
    }
}

pub(crate) fn meta() -> Value {
    json!({ "api_status": "stable", "version": ONPREM_API_VERSION })
}

/// Meta's error shape.
pub(crate) fn error(status: StatusCode, c: i64, details: &str) -> Outcome {
    let body = json!({
        "meta": meta(),
        "errors": [{ "code": c, "title": title(c), "details": details }],
    });
    Outcome::new(json_response(status, &body))
        .code(c)
        .note(details.to_owned())
}

fn ok(body: &Value) -> Outcome {
    Outcome::new(json_response(StatusCode::OK, body))
}

pub(crate) async fn handle(state: &Arc<State>, route: Route, req: Request<Incoming>) -> Outcome {
    if route == Route::OnPremLogin {
        return login(state, req).await;
    }
    let token = match bearer(state, req.headers()) {
        Ok(token) => token,
        Err(out) => return *out,
    };
    let id = media_id(req.uri().path());
    let (parts, body) = req.into_parts();
    match (route, id) {
        (Route::OnPremLogout, _) => {
            lock(&state.tokens).remove(&token);
            ok(&json!({ "meta": meta() }))
        }
        (Route::OnPremUpload, _) => upload(state, parts, body).await,
        (Route::OnPremGetMedia, id) => {
            let media = id
                .and_then(|id| state.store.get(&id))
                .filter(|m| m.visible_to_onprem());
            match media {
                Some(media) => crate::oss::stream_media(&media).await,
                None => {
                    let mut response = respond(StatusCode::NOT_FOUND, "text/plain", Bytes::new());
                    response.headers_mut().remove(header::CONTENT_TYPE);
                    Outcome::new(response).note("media not found")
                }
            }
        }
        (Route::OnPremDeleteMedia, id) => {
            let media = id
                .and_then(|id| state.store.get(&id))
                .filter(|m| m.visible_to_onprem());
            match media {
                Some(media) if state.store.delete(&media.id) => ok(&json!({ "meta": meta() })),
                _ => error(StatusCode::NOT_FOUND, code::NOT_FOUND, "Media not found."),
            }
        }
        (Route::OnPremRetryDownload, Some(id)) => retry_download(state, &id),
        _ => error(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "URL path not found.",
        ),
    }
}

/// The percent-decoded media id of `/v1/media/{id}` or `/v1/media/{id}/download`.
fn media_id(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/v1/media/")?.split('/').next()?;
    let id = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!id.is_empty()).then_some(id)
}

fn unauthorized(details: &str) -> Outcome {
    error(StatusCode::UNAUTHORIZED, code::ACCESS_DENIED, details)
}

/// The trimmed parameter of `Authorization: <scheme> <param>` (the scheme in any case).
fn auth_param<'h>(value: &'h HeaderValue, scheme: &str) -> Option<&'h str> {
    let (sent, param) = value.to_str().ok()?.split_once(' ')?;
    sent.eq_ignore_ascii_case(scheme).then(|| param.trim())
}

/// The valid token of `Authorization: Bearer <token>`. `Authorization` sent twice is refused
/// (401), not read as its first value: HTTP allows it once, and a proxy or server that took the
/// other one would act for someone else.
fn bearer(state: &State, headers: &HeaderMap) -> Result<String, Box<Outcome>> {
    let value = match single_header(headers, header::AUTHORIZATION) {
        Ok(Some(value)) => value,
        Ok(None) => {
            return Err(Box::new(unauthorized(
                "Authorization: Bearer <token> is required.",
            )));
        }
        Err(Repeated) => {
            return Err(Box::new(unauthorized("Authorization must be sent once.")));
        }
    };
    let token = auth_param(value, "bearer").filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Box::new(unauthorized(
            "Authorization must be `Bearer <token>`.",
        )));
    };
    let now = state.clock.now_ms();
    let mut tokens = lock(&state.tokens);
    match tokens.get(token) {
        None => Err(Box::new(unauthorized("Invalid or revoked token."))),
        Some(t) if now >= t.expires_ms => {
            tokens.remove(token);
            Err(Box::new(unauthorized("Token expired.")))
        }
        Some(_) => Ok(token.to_owned()),
    }
}

/// `user:password` of `Authorization: Basic ..` (sent once).
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = single_header(headers, header::AUTHORIZATION).ok()??;
    let encoded = auth_param(value, "basic")?;
    let decoded = STANDARD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn login(state: &Arc<State>, req: Request<Incoming>) -> Outcome {
    let (parts, body) = req.into_parts();
    let max = state.config.max_json_body;
    let bytes = match read_capped(body, max).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => return too_large(max as u64),
        Err(ReadError::Broken) => {
            return error(
                StatusCode::BAD_REQUEST,
                1000,
                "The request body could not be read.",
            )
            .close();
        }
    };
    let Some((user, password)) = basic(&parts.headers) else {
        return unauthorized("Invalid credentials.");
    };
    let known = lock(&state.passwords)
        .get(&user)
        .is_some_and(|p| *p == password);
    if !known {
        return unauthorized("Invalid credentials.");
    }
    let new_password = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(obj)) => match obj.get("new_password") {
                None => None,
                Some(Value::String(p)) if !p.is_empty() => Some(p.clone()),
                Some(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        code::PARAMETER_INVALID,
                        "new_password must be a non-empty string.",
                    );
                }
            },
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    code::PARAMETER_INVALID,
                    "The body must be a JSON object: {} or {\"new_password\":\"...\"}.",
                );
            }
        }
    };
    match new_password {
        Some(p) => {
            lock(&state.must_change_password).remove(&user);
            lock(&state.passwords).insert(user, p);
        }
        None if lock(&state.must_change_password).contains(&user) => {
            return error(
                StatusCode::BAD_REQUEST,
                code::ACCESS_DENIED,
                "The password must be changed on the first login: send {\"new_password\":\"...\"}.",
            );
        }
        None => {}
    }
    let token = format!(
        "sbx{:032x}{:032x}",
        state.random_u128(),
        state.random_u128()
    );
    let lifetime = u64::try_from(state.config.token_lifetime.as_millis()).unwrap_or(u64::MAX);
    let now = state.clock.now_ms();
    // `expires_after` has whole seconds: the token ends at the second it names (the lifetime
    // rounded down to it), so it is refused exactly from the time the client was told, not up
    // to 999 ms later.
    let expires_secs = now.saturating_add(lifetime) / 1000;
    let expires_ms = expires_secs.saturating_mul(1000);
    {
        let mut tokens = lock(&state.tokens);
        tokens.retain(|_, t| t.expires_ms > now);
        if tokens.len() >= MAX_TOKENS {
            let oldest = tokens
                .iter()
                .min_by_key(|(_, t)| t.expires_ms)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(token.clone(), Token { expires_ms });
    }
    ok(&json!({
        "users": [{ "token": token, "expires_after": format_expires_after(expires_secs) }]
    }))
}

async fn upload(state: &Arc<State>, parts: Parts, mut body: Incoming) -> Outcome {
    let announced = announced_len(&body);
    if announced > MAX_UPLOAD_BODY {
        return too_large(MAX_UPLOAD_BODY);
    }
    let Ok(content_type) = single_header(&parts.headers, header::CONTENT_TYPE) else {
        let out = error(
            StatusCode::BAD_REQUEST,
            code::PARAMETER_INVALID,
            "Content-Type must be sent once: the file's MIME type.",
        );
        return drained(body, out).await;
    };
    let Some(mime) = content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        let out = error(
            StatusCode::BAD_REQUEST,
            code::PARAMETER_MISSING,
            "Content-Type is required: the file's MIME type.",
        );
        return drained(body, out).await;
    };
    if mime.to_ascii_lowercase().starts_with("multipart/") {
        let out = error(
            StatusCode::BAD_REQUEST,
            code::PARAMETER_INVALID,
            "The body must be the file's raw bytes with its MIME type as Content-Type, not a multipart form.",
        );
        return drained(body, out).await;
    }
    // Content-Type is a header, which may carry parameters (`audio/ogg; codecs=opus`): the
    // type is looked up by its essence here, unlike NXCloud's `type` form field.
    let kind = match media_table::check_essence(&mime, announced.max(1)) {
        Ok(kind) => kind,
        Err(e) => {
            let out = error(
                StatusCode::BAD_REQUEST,
                code::PARAMETER_INVALID,
                &e.to_string(),
            );
            return drained(body, out).await;
        }
    };
    let limit = kind.max_bytes;
    let mut pending = match state.store.begin().await {
        Ok(p) => Some(p),
        Err(_) => {
            let out = error(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL_ERROR,
                "The sandbox could not create a file for the upload.",
            );
            return drained(body, out).await;
        }
    };
    let mut len = 0u64;
    let mut full = false;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    1000,
                    "The request body could not be read.",
                )
                .close();
            }
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                len += chunk.len() as u64;
                if len > MAX_UPLOAD_BODY {
                    return too_large(MAX_UPLOAD_BODY);
                }
                if len > limit {
                    pending = None;
                }
                if let Some(p) = pending.as_mut()
                    && p.write(&chunk).await.is_err()
                {
                    // Storage full or a disk error: answered 1014 once the body is read.
                    full = true;
                    pending = None;
                }
            }
        }
    }
    if len == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            code::PARAMETER_MISSING,
            "The request body (the file) is empty.",
        );
    }
    if let Err(e) = media_table::check_essence(&mime, len) {
        return error(
            StatusCode::BAD_REQUEST,
            code::PARAMETER_INVALID,
            &e.to_string(),
        );
    }
    let stored = match pending {
        Some(p) if !full => p
            .finish(NewMedia {
                msg_type: kind.name.to_owned(),
                mime,
                file_name: None,
                origin: Origin::OnPremUpload,
            })
            .await
            .ok(),
        _ => None,
    };
    match stored {
        Some(media) => ok(&json!({ "media": [{ "id": media.id }], "meta": meta() })),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "The sandbox's media storage is full.",
        ),
    }
}

fn retry_download(state: &Arc<State>, id: &str) -> Outcome {
    let (media, failed) = match state.store.inbound(id) {
        Some((media, expired)) => {
            if !expired {
                state.store.restore(id);
            }
            (media, expired)
        }
        None => match state.store.get(id).filter(|m| m.visible_to_onprem()) {
            Some(media) => (media, false),
            None => return error(StatusCode::NOT_FOUND, code::NOT_FOUND, "Media not found."),
        },
    };
    let body = notification(&media, failed);
    let url = lock(&state.callback_url).clone();
    let task_state = Arc::clone(state);
    state.runtime.spawn(async move {
        task_state
            .deliver(Route::OnPremCallback, url, Bytes::from(body))
            .await;
    });
    // 202 Accepted: the spec gives no status for this acknowledgement; Meta's page says the
    // answer indicates "the API request is being processed", which is what 202 means (RFC 9110
    // §15.3.3: accepted, processing not completed). Our reading; a client should take any 2xx.
    Outcome::new(json_response(
        StatusCode::ACCEPTED,
        &json!({ "media_items": [{ "id": media.id }], "meta": meta() }),
    ))
}

/// The retry-download notification for one media item.
pub(crate) fn notification(media: &Media, failed: bool) -> Vec<u8> {
    let mut item = serde_json::Map::new();
    item.insert(
        media.msg_type.clone(),
        json!({
            "id": media.id,
            "mime_type": media.mime,
            "sha256": media.sha256.to_string(),
            "status": "downloaded",
        }),
    );
    item.insert("type".into(), Value::String(media.msg_type.clone()));
    if failed {
        item.insert(
            "errors".into(),
            json!([{
                "code": 400,
                "title": "Parameter not valid",
                "details": "Media not found in the datastore.",
            }]),
        );
    }
    serde_json::to_vec(&json!({ "media_items": [Value::Object(item)] })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_one_decoded_segment() {
        assert_eq!(media_id("/v1/media/abc").as_deref(), Some("abc"));
        assert_eq!(media_id("/v1/media/abc/download").as_deref(), Some("abc"));
        assert_eq!(
            media_id("/v1/media/..%2Fusers").as_deref(),
            Some("../users")
        );
        assert_eq!(media_id("/v1/media/a%20b").as_deref(), Some("a b"));
        assert_eq!(media_id("/v1/media/"), None);
        assert_eq!(media_id("/v1/media/%ff"), None);
        assert_eq!(media_id("/v1/users"), None);
    }

    #[test]
    fn basic_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Basic YWRtaW46ZGVtby1wYXNzd29yZA==".parse().unwrap(),
        );
        assert_eq!(
            basic(&headers),
            Some(("admin".to_owned(), "demo-password".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic(&headers), None);
    }
}
