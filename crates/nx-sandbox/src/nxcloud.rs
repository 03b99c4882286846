//! NXCloud's WhatsApp media API: `POST /api/wa/getMedia`, `/api/wa/deleteMedia` (JSON) and
//! `/api/wa/uploadMedia` (multipart).
//!
//! Checks, in this order (the first failing one answers):
//!
//! | check | code |
//! | --- | --- |
//! | JSON routes: body over the configured maximum (announced or read) | HTTP 413 |
//! | a common header (accessKey, ts, bizType, action, sign) absent or empty | 1001 |
//! | a common header sent twice; bizType not `2`; action not the path's | 1002 |
//! | accessKey unknown | 1005 |
//! | ts not decimal milliseconds within 60 000 ms of the sandbox clock | 1004 |
//! | Content-Type absent, sent twice, not `application/json` (JSON routes) or not `multipart/form-data` with a boundary (upload) | 1003 |
//! | sign not the lower-case hex MD5 of the string to sign | 1003 |
//! | body not a JSON object / malformed form | 9000 |
//! | a known field sent twice (JSON: a repeated key), over 1 KiB, or (form) not UTF-8 | 1002 |
//! | upload: the sandbox's storage failed while the file streamed in | 9001 |
//! | a field missing, empty (or JSON `null`) | 9000 |
//! | a field not a string (JSON); messaging_product not exactly `whatsapp` | 1002 |
//! | business_phone not digits only | 9002 |
//! | business_phone not bound to the account | 9006 |
//! | upload: type not spelled exactly as in the media table; file over its kind's limit | 1002 |
//! | upload: empty file | 9000 |
//! | getMedia/deleteMedia: no media with that id for that business_phone | -1 |
//!
//! Envelope answers use HTTP 200 whatever the code: that is our reading of the vendor's
//! documentation, which only ever shows the code inside the envelope.
//!
//! 9000 or 1002: the spec gives 9000 for "a required body field is missing" and 1002 for "a
//! wrong body parameter". The sandbox answers 9000 when a field (or the file) is absent or
//! empty, or the body cannot be read as fields at all, and 1002 when a field is there with a
//! wrong value: a value other than the one documented, a value sent twice or over 1 KiB (there
//! is no single value to take), a `type` not in the media table, a file over its kind's limit.
//! business_phone keeps its own code, 9002. The message always names the field, and for the
//! file the accepted types or the limit, since 1002 is also the code for a wrong bizType/action.
//!
//! Values are compared as sent: form fields are not trimmed (`" whatsapp\r\n"` is not
//! `whatsapp`, a phone with a stray space is not digits), and `type` must be one of the media
//! table's spellings exactly (no case folding, no parameters such as `; codecs=opus`): the
//! sandbox's strict reading of the spec, see [`crate::media_table`].

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use hyper::body::Incoming;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};

use crate::config::{Account, TS_WINDOW_MS};
use crate::log::Route;
use crate::media_table::{self, Refusal};
use crate::paced::{Paced, Progress};
use crate::request::{
    MAX_UPLOAD_BODY, ReadError, announced_len, drained, read_capped, single_header,
};
use crate::response::{Outcome, respond, text, too_large};
use crate::signing;
use crate::state::State;
use crate::store::{NewMedia, Origin, StoreError};
use crate::text::is_digits;

/// NXCloud's codes, as the vendor documents them (kept apart from the client's table on purpose).
pub(crate) mod code {
    pub(crate) const SUCCESS: i64 = 0;
    pub(crate) const REQUEST_FAILED: i64 = -1;
    pub(crate) const MISSING_PARAMETERS: i64 = 1001;
    pub(crate) const PARAMETER_ERROR: i64 = 1002;
    pub(crate) const INVALID_SIGNATURE: i64 = 1003;
    pub(crate) const TIMESTAMP_EXPIRED: i64 = 1004;
    pub(crate) const INSUFFICIENT_PERMISSIONS: i64 = 1005;
    pub(crate) const PARAMETER_EXCEPTION: i64 = 9000;
    pub(crate) const SYSTEM_BUSINESS_ERROR: i64 = 9001;
    pub(crate) const MERCHANT_PHONE_ERROR: i64 = 9002;
    pub(crate) const APP_UNAVAILABLE: i64 = 9003;
    pub(crate) const NO_COUNTRY_PRICING: i64 = 9004;
    pub(crate) const INSUFFICIENT_BALANCE: i64 = 9005;
    pub(crate) const NOT_BOUND: i64 = 9006;
    pub(crate) const DOWNSTREAM_ERROR: i64 = 9007;
    pub(crate) const WHATSAPP_ERROR: i64 = 9099;
}

/// The message the vendor's table gives a code.
fn message(c: i64) -> &'static str {
    match c {
        code::SUCCESS => "Request successful",
        code::REQUEST_FAILED => "Request failed",
        code::MISSING_PARAMETERS => "Missing parameters",
        code::PARAMETER_ERROR => "Parameter error",
        code::INVALID_SIGNATURE => "Invalid signature",
        code::TIMESTAMP_EXPIRED => "Timestamp expired",
        code::INSUFFICIENT_PERMISSIONS => "Insufficient permissions",
        code::PARAMETER_EXCEPTION => "Parameter exception",
        code::SYSTEM_BUSINESS_ERROR => "System business error",
        code::MERCHANT_PHONE_ERROR => "Merchant phone number error",
        code::APP_UNAVAILABLE => "Application does not exist or is unavailable",
        code::NO_COUNTRY_PRICING => "No country pricing for the application",
        code::INSUFFICIENT_BALANCE => "Insufficient account balance",
        code::NOT_BOUND => "WhatsApp number not bound to the application",
        code::DOWNSTREAM_ERROR => "Downstream communication endpoint exception",
        code::WHATSAPP_ERROR => "WhatsApp error",
        _ => "Error",
    }
}

/// The longest field value accepted (form text fields and JSON string values), in bytes.
pub(crate) const MAX_TEXT_FIELD: usize = 1024;

/// An envelope answer with HTTP 200.
pub(crate) fn envelope(c: i64, msg: String, data: Option<Value>) -> Outcome {
    let body = json!({ "code": c, "message": msg, "data": data });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Outcome::new(respond(
        StatusCode::OK,
        "application/json;charset=UTF-8",
        Bytes::from(bytes),
    ))
    .code(c)
}

/// A failure envelope: the table's message, a colon and the detail.
pub(crate) fn fail(c: i64, detail: impl AsRef<str>) -> Outcome {
    let detail = detail.as_ref();
    envelope(c, format!("{}: {detail}", message(c)), None).note(detail.to_owned())
}

pub(crate) fn success(data: Value) -> Outcome {
    envelope(code::SUCCESS, message(code::SUCCESS).to_owned(), Some(data))
}

pub(crate) async fn handle(
    state: &Arc<State>,
    route: Route,
    req: hyper::Request<Incoming>,
) -> Outcome {
    let (parts, body) = match post_only(req) {
        Ok(request) => request,
        Err(out) => return *out,
    };
    match route {
        Route::UploadMedia => upload(state, parts, body).await,
        _ => json_route(state, route, parts, body).await,
    }
}

/// NXCloud's routes take `POST` only: the request's parts, or the 405 to answer.
pub(crate) fn post_only(req: hyper::Request<Incoming>) -> Result<(Parts, Incoming), Box<Outcome>> {
    if req.method() != Method::POST {
        let mut out = Outcome::new(text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"));
        out.response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
        return Err(Box::new(out));
    }
    Ok(req.into_parts())
}

/// The verified common headers.
pub(crate) struct Auth<'s> {
    pub(crate) account: &'s Account,
    access_key: Vec<u8>,
    ts: Vec<u8>,
    biz_type: Vec<u8>,
    action: Vec<u8>,
    sign: Vec<u8>,
}

impl Auth<'_> {
    pub(crate) fn check_sign(&self, json_body: Option<&[u8]>) -> Result<(), Box<Outcome>> {
        let expected = signing::sign(
            &self.access_key,
            &self.action,
            &self.biz_type,
            &self.ts,
            json_body,
            &self.account.secret,
        );
        if signing::matches(&self.sign, &expected) {
            Ok(())
        } else {
            Err(Box::new(fail(
                code::INVALID_SIGNATURE,
                "sign does not match (sorted headers, the body bytes as sent for JSON, the accessSecret)",
            )))
        }
    }
}

const COMMON: [&str; 5] = ["accessKey", "ts", "bizType", "action", "sign"];

/// Checks the common headers up to (not including) the signature.
pub(crate) fn authenticate<'s>(
    state: &'s State,
    headers: &HeaderMap,
    action: &str,
) -> Result<Auth<'s>, Box<Outcome>> {
    let mut values: [&[u8]; 5] = [b""; 5];
    let mut missing = Vec::new();
    let mut repeated = Vec::new();
    for (i, name) in COMMON.iter().enumerate() {
        let mut all = headers.get_all(*name).iter();
        match all.next() {
            Some(v) if !v.as_bytes().is_empty() => values[i] = v.as_bytes(),
            _ => missing.push(*name),
        }
        if all.next().is_some() {
            repeated.push(*name);
        }
    }
    if !missing.is_empty() {
        return Err(Box::new(fail(
            code::MISSING_PARAMETERS,
            format!("header(s) {} absent", missing.join(", ")),
        )));
    }
    if !repeated.is_empty() {
        return Err(Box::new(fail(
            code::PARAMETER_ERROR,
            format!("header(s) {} sent more than once", repeated.join(", ")),
        )));
    }
    let [access_key, ts, biz_type, sent_action, sign] = values;
    if biz_type != b"2" {
        return Err(Box::new(fail(
            code::PARAMETER_ERROR,
            format!(
                "bizType must be 2 (WhatsApp) for /api/wa/{action}; got `{}`",
                crate::log::printable(biz_type, 16)
            ),
        )));
    }
    if sent_action != action.as_bytes() {
        return Err(Box::new(fail(
            code::PARAMETER_ERROR,
            format!(
                "action `{}` does not match the path /api/wa/{action}",
                crate::log::printable(sent_action, 32)
            ),
        )));
    }
    let Some(account) = state.account(access_key) else {
        return Err(Box::new(fail(
            code::INSUFFICIENT_PERMISSIONS,
            "unknown accessKey",
        )));
    };
    let now = state.clock.now_ms();
    let parsed = std::str::from_utf8(ts)
        .ok()
        .filter(|s| s.len() <= 19 && is_digits(s))
        .and_then(|s| s.parse::<u64>().ok());
    match parsed {
        None => {
            return Err(Box::new(fail(
                code::TIMESTAMP_EXPIRED,
                "ts must be the Unix time in milliseconds, as decimal digits",
            )));
        }
        Some(ts) if ts.abs_diff(now) > TS_WINDOW_MS => {
            return Err(Box::new(fail(
                code::TIMESTAMP_EXPIRED,
                format!(
                    "ts is {} ms away from the server clock (at most {TS_WINDOW_MS} ms; ts is in milliseconds; the server time is in the Date header)",
                    ts.abs_diff(now)
                ),
            )));
        }
        Some(_) => {}
    }
    Ok(Auth {
        account,
        access_key: access_key.to_vec(),
        ts: ts.to_vec(),
        biz_type: biz_type.to_vec(),
        action: sent_action.to_vec(),
        sign: sign.to_vec(),
    })
}

/// The media type's essence (before `;`), lower case; `None` when `Content-Type` is absent,
/// not text, or sent more than once (two types: which one was signed for is anybody's guess,
/// so the request has no single Content-Type and is refused like a wrong one, 1003).
pub(crate) fn content_type_essence(headers: &HeaderMap) -> Option<String> {
    let value = single_header(headers, header::CONTENT_TYPE)
        .ok()??
        .to_str()
        .ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

pub(crate) fn check_phone(account: &Account, phone: &str) -> Result<(), Box<Outcome>> {
    if !is_digits(phone) {
        return Err(Box::new(fail(
            code::MERCHANT_PHONE_ERROR,
            "business_phone must be the merchant's WhatsApp number, digits only with the country code",
        )));
    }
    if !account.phones.iter().any(|p| p == phone) {
        return Err(Box::new(fail(
            code::NOT_BOUND,
            "business_phone is not bound to this account's application",
        )));
    }
    Ok(())
}

/// A JSON route's body, read (capped) and authenticated: the checks down to the signature, in
/// the module's order. The JSON routes' common start (getMedia, deleteMedia, mt).
pub(crate) async fn signed_json<'s>(
    state: &'s State,
    route: Route,
    parts: &Parts,
    body: Incoming,
) -> Result<(Auth<'s>, Bytes), Box<Outcome>> {
    let max = state.config.max_json_body;
    let bytes = match read_capped(body, max).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => return Err(Box::new(too_large(max as u64))),
        Err(ReadError::Broken) => {
            return Err(Box::new(
                Outcome::new(text(StatusCode::BAD_REQUEST, "Bad Request"))
                    .note("request body could not be read")
                    .close(),
            ));
        }
    };
    let auth = authenticate(state, &parts.headers, route.name())?;
    if content_type_essence(&parts.headers).as_deref() != Some("application/json") {
        return Err(Box::new(fail(
            code::INVALID_SIGNATURE,
            "Content-Type must be application/json, sent once",
        )));
    }
    auth.check_sign(Some(&bytes))?;
    Ok((auth, bytes))
}

async fn json_route(state: &Arc<State>, route: Route, parts: Parts, body: Incoming) -> Outcome {
    let (auth, bytes) = match signed_json(state, route, &parts, body).await {
        Ok(signed) => signed,
        Err(out) => return *out,
    };
    let (phone, media_id) = match media_fields(&bytes) {
        Ok(fields) => fields,
        Err((c, detail)) => return fail(c, detail),
    };
    if let Err(out) = check_phone(auth.account, &phone) {
        return *out;
    }
    let media = state
        .store
        .get(&media_id)
        .filter(|m| m.visible_to_phone(&phone));
    let Some(media) = media else {
        return fail(
            code::REQUEST_FAILED,
            "media not found (unknown, deleted, or not this business_phone's)",
        );
    };
    match route {
        Route::DeleteMedia => {
            if state.store.delete(&media.id) {
                success(json!({ "success": true }))
            } else {
                fail(code::REQUEST_FAILED, "media not found")
            }
        }
        _ => success(json!({
            "mime_type": media.mime,
            "file_name": media.file_name,
            "url": crate::oss::signed_url(state, &media),
        })),
    }
}

/// The JSON body's fields that the sandbox reads, in the order of [`MediaBody::fields`].
const JSON_FIELDS: [&str; 3] = ["business_phone", "Media-ID", "messaging_product"];

/// One known field of the JSON body: its first value, and whether the key came again.
#[derive(Default)]
struct JsonField {
    value: Option<Value>,
    repeated: bool,
}

/// A getMedia/deleteMedia body as serde reads it: the known fields (keys compared exactly, so
/// `media_id` is not `Media-ID`), each with every occurrence noticed. serde_json's own maps keep
/// the last of a repeated key silently; this visitor sees each key as it comes. Other keys are
/// skipped unread ([`IgnoredAny`]).
#[derive(Default)]
struct MediaBody {
    fields: [JsonField; 3],
}

impl<'de> Deserialize<'de> for MediaBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = MediaBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MediaBody, A::Error> {
                let mut body = MediaBody::default();
                while let Some(key) = map.next_key::<String>()? {
                    match JSON_FIELDS.iter().position(|name| *name == key) {
                        Some(i) => {
                            let value: Value = map.next_value()?;
                            let field = &mut body.fields[i];
                            if field.value.is_some() {
                                field.repeated = true;
                            } else {
                                field.value = Some(value);
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(body)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The refusal of a JSON body that is not an object (9000).
pub(crate) fn unreadable_json(e: serde_json::Error) -> (i64, String) {
    let detail = if e.classify() == serde_json::error::Category::Data {
        "the body must be a JSON object"
    } else {
        "the body is not valid JSON"
    };
    (code::PARAMETER_EXCEPTION, detail.to_owned())
}

/// `business_phone`, `Media-ID` (exactly that key) and `messaging_product` = `whatsapp`, or
/// the code and detail of the first problem (see the module's table).
fn media_fields(bytes: &[u8]) -> Result<(String, String), (i64, String)> {
    let body: MediaBody = serde_json::from_slice(bytes).map_err(unreadable_json)?;
    let names = |pick: &dyn Fn(&JsonField) -> bool| {
        JSON_FIELDS
            .iter()
            .zip(&body.fields)
            .filter(|(_, field)| pick(field))
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
    };
    let repeated = names(&|f| f.repeated);
    if !repeated.is_empty() {
        return Err((
            code::PARAMETER_ERROR,
            format!("field(s) {} sent more than once", repeated.join(", ")),
        ));
    }
    let too_long =
        names(&|f| matches!(&f.value, Some(Value::String(s)) if s.len() > MAX_TEXT_FIELD));
    if !too_long.is_empty() {
        return Err((
            code::PARAMETER_ERROR,
            format!(
                "field(s) {} longer than {MAX_TEXT_FIELD} bytes",
                too_long.join(", ")
            ),
        ));
    }
    let missing = names(&|f| match &f.value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    });
    if !missing.is_empty() {
        return Err((
            code::PARAMETER_EXCEPTION,
            format!("field(s) {} missing or empty", missing.join(", ")),
        ));
    }
    let not_strings = names(&|f| !matches!(f.value, Some(Value::String(_))));
    if !not_strings.is_empty() {
        return Err((
            code::PARAMETER_ERROR,
            format!("field(s) {} must be strings", not_strings.join(", ")),
        ));
    }
    let [phone, media_id, product] = body.fields.map(|f| match f.value {
        Some(Value::String(s)) => s,
        _ => String::new(),
    });
    if product != "whatsapp" {
        return Err((
            code::PARAMETER_ERROR,
            "messaging_product must be `whatsapp`".into(),
        ));
    }
    Ok((phone, media_id))
}

async fn upload(state: &Arc<State>, parts: Parts, body: Incoming) -> Outcome {
    if announced_len(&body) > MAX_UPLOAD_BODY {
        return too_large(MAX_UPLOAD_BODY);
    }
    let auth = match authenticate(state, &parts.headers, Route::UploadMedia.name()) {
        Ok(auth) => auth,
        Err(out) => return drained(body, *out).await,
    };
    let boundary = (content_type_essence(&parts.headers).as_deref() == Some("multipart/form-data"))
        .then(|| {
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|ct| multer::parse_boundary(ct).ok())
        })
        .flatten();
    let Some(boundary) = boundary else {
        let out = fail(
            code::INVALID_SIGNATURE,
            "Content-Type must be multipart/form-data with a boundary, sent once",
        );
        return drained(body, out).await;
    };
    if let Err(out) = auth.check_sign(None) {
        return drained(body, *out).await;
    }
    read_form(state, auth.account, body, boundary).await
}

#[derive(Default)]
struct Form {
    messaging_product: Option<String>,
    business_phone: Option<String>,
    mime: Option<String>,
    file_seen: bool,
    file_name: Option<String>,
    file_len: u64,
    /// The first problem with a field's value that leaves no single value to judge (1002: sent
    /// twice, too long, not UTF-8) or with the storage (9001).
    problem: Option<(i64, String)>,
}

impl Form {
    fn problem(&mut self, c: i64, detail: String) {
        self.problem.get_or_insert((c, detail));
    }

    /// Whether the fields seen so far still allow storing the file. A field not seen yet may
    /// come after the file: the spec gives the form's fields no order (nor does RFC 7578), so
    /// only a field already seen with a wrong value rules the upload out before it is stored.
    fn storable(&self, account: &Account) -> bool {
        self.problem.is_none()
            && self
                .messaging_product
                .as_deref()
                .is_none_or(|p| p == "whatsapp")
            && self
                .business_phone
                .as_deref()
                .is_none_or(|p| check_phone(account, p).is_ok())
            && self
                .mime
                .as_deref()
                .is_none_or(|m| media_table::exact(m).is_some())
    }
}

async fn read_form(
    state: &Arc<State>,
    account: &Account,
    body: Incoming,
    boundary: String,
) -> Outcome {
    let progress = Progress::default();
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_UPLOAD_BODY));
    let mut multipart = multer::Multipart::with_constraints(
        Paced::new(body, progress.clone()),
        boundary,
        constraints,
    );
    let mut form = Form::default();
    let mut pending = None;
    let broken = loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        progress.made();
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some(n @ ("messaging_product" | "business_phone" | "type")) => {
                let mut buf = Vec::new();
                let mut too_long = false;
                let result = loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            progress.made();
                            if buf.len() + chunk.len() > MAX_TEXT_FIELD {
                                too_long = true;
                            } else {
                                buf.extend_from_slice(&chunk);
                            }
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                if let Err(e) = result {
                    break Some(e);
                }
                let slot = match n {
                    "messaging_product" => &mut form.messaging_product,
                    "business_phone" => &mut form.business_phone,
                    _ => &mut form.mime,
                };
                // Not trimmed: a value is judged exactly as sent.
                let value = String::from_utf8(buf).ok();
                if too_long {
                    form.problem(
                        code::PARAMETER_ERROR,
                        format!("form field {n} is longer than {MAX_TEXT_FIELD} bytes"),
                    );
                } else if slot.is_some() {
                    form.problem(
                        code::PARAMETER_ERROR,
                        format!("form field {n} is sent more than once"),
                    );
                } else if let Some(value) = value {
                    *slot = Some(value);
                } else {
                    form.problem(
                        code::PARAMETER_ERROR,
                        format!("form field {n} is not UTF-8"),
                    );
                }
            }
            Some("file") => {
                if form.file_seen {
                    form.problem(
                        code::PARAMETER_ERROR,
                        "form field file is sent more than once".into(),
                    );
                    pending = None;
                }
                let first = !form.file_seen;
                form.file_seen = true;
                form.file_name = field
                    .file_name()
                    .map(|n| n.chars().filter(|c| !c.is_control()).take(255).collect());
                let limit = form
                    .mime
                    .as_deref()
                    .and_then(media_table::exact)
                    .map_or_else(media_table::largest, |kind| kind.max_bytes);
                if first && form.storable(account) {
                    match state.store.begin().await {
                        Ok(p) => pending = Some(p),
                        Err(_) => form.problem(
                            code::SYSTEM_BUSINESS_ERROR,
                            "the sandbox could not create a file for the upload".into(),
                        ),
                    }
                }
                let result = loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            progress.made();
                            form.file_len += chunk.len() as u64;
                            if form.file_len > limit {
                                // Over the limit: stop storing, keep reading to the end.
                                pending = None;
                            }
                            if let Some(p) = pending.as_mut()
                                && let Err(e) = p.write(&chunk).await
                            {
                                pending = None;
                                let detail = match e {
                                    StoreError::Full => {
                                        "the sandbox's media storage is full".to_owned()
                                    }
                                    StoreError::Io(e) => {
                                        format!("the sandbox could not store the file: {e}")
                                    }
                                };
                                form.problem(code::SYSTEM_BUSINESS_ERROR, detail);
                            }
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                if let Err(e) = result {
                    break Some(e);
                }
            }
            _ => {
                // Unknown fields are read and ignored.
                loop {
                    match field.chunk().await {
                        Ok(Some(_)) => progress.made(),
                        Ok(None) => break,
                        Err(_) => break,
                    }
                }
            }
        }
    };
    drop(multipart);
    if let Some(e) = broken {
        drop(pending);
        return match e {
            multer::Error::StreamSizeExceeded { .. } => too_large(MAX_UPLOAD_BODY),
            multer::Error::StreamReadFailed(_) if !progress.exceeded() => {
                Outcome::new(text(StatusCode::BAD_REQUEST, "Bad Request"))
                    .note("request body could not be read")
                    .close()
            }
            e => fail(
                code::PARAMETER_EXCEPTION,
                format!("the multipart/form-data body is malformed: {e}"),
            )
            .close(),
        };
    }
    finish_upload(account, form, pending).await
}

async fn finish_upload(
    account: &Account,
    form: Form,
    pending: Option<crate::store::Pending>,
) -> Outcome {
    if let Some((c, detail)) = form.problem {
        return fail(c, detail);
    }
    let mut missing = Vec::new();
    if form.messaging_product.as_deref().is_none_or(str::is_empty) {
        missing.push("messaging_product");
    }
    if form.business_phone.as_deref().is_none_or(str::is_empty) {
        missing.push("business_phone");
    }
    if form.mime.as_deref().is_none_or(str::is_empty) {
        missing.push("type");
    }
    if !form.file_seen {
        missing.push("file");
    }
    if !missing.is_empty() {
        return fail(
            code::PARAMETER_EXCEPTION,
            format!("form field(s) {} missing or empty", missing.join(", ")),
        );
    }
    if form.messaging_product.as_deref() != Some("whatsapp") {
        return fail(
            code::PARAMETER_ERROR,
            "messaging_product must be `whatsapp` (exactly, no surrounding whitespace)",
        );
    }
    let phone = form.business_phone.unwrap_or_default();
    if let Err(out) = check_phone(account, &phone) {
        return *out;
    }
    let mime = form.mime.unwrap_or_default();
    let kind = match media_table::check_exact(&mime, form.file_len) {
        Ok(kind) => kind,
        Err(e @ Refusal::Empty) => return fail(code::PARAMETER_EXCEPTION, e.to_string()),
        Err(e) => return fail(code::PARAMETER_ERROR, e.to_string()),
    };
    let Some(pending) = pending else {
        return fail(
            code::SYSTEM_BUSINESS_ERROR,
            "the sandbox did not store the file",
        );
    };
    let stored = pending
        .finish(NewMedia {
            msg_type: kind.name.to_owned(),
            mime,
            file_name: form.file_name,
            origin: Origin::NxUpload { phone },
        })
        .await;
    match stored {
        Ok(media) => success(json!({ "id": media.id })),
        Err(_) => fail(
            code::SYSTEM_BUSINESS_ERROR,
            "the sandbox's media storage is full",
        ),
    }
}
