//! NXCloud's `POST /api/wa/mt` for media messages, read strictly, and the record of what was
//! sent ([`crate::Sandbox::sent_messages`], `GET /_sandbox/messages`).
//!
//! The sandbox's own reading of the vendor's page (it shares no types with the client). After
//! the checks every JSON route makes (body size, common headers, `ts`, Content-Type, `sign`:
//! see [`crate::nxcloud`]), in this order, the first failing check answers:
//!
//! | check | code |
//! | --- | --- |
//! | body not a JSON object | 9000 |
//! | a top-level key sent twice | 1002 |
//! | a top-level key that is none of the spec's fields, no message type's object and not the object named by type | 1002 |
//! | each of appkey, business_phone, messaging_product, recipient_type, to, type in turn: missing, empty or `null` / not a string or over 1 KiB | 9000 / 1002 |
//! | cus_message_id, dr_webhook (optional): not a string, over 1 KiB, or empty | 1002 |
//! | messaging_product not exactly `whatsapp`; recipient_type not exactly `individual` | 1002 |
//! | appkey not one of the account's applications | 9003 |
//! | business_phone not digits / not bound to the account | 9002 / 9006 |
//! | to not 7 to 15 digits | 1002 |
//! | type not `image`, `video`, `audio`, `document` or `sticker` (`text`, `location`, `template` are not emulated) | 1002 |
//! | an object of another type is present (a media kind's, or `text`, `location`, `template`) | 1002 |
//! | the object named by type missing or `null` | 9000 |
//! | it is not an object, has a key twice, or a key its kind does not take (caption: image and video; filename: document) | 1002 |
//! | neither `id` nor `link` (or it is empty) / both | 9000 / 1002 |
//! | id, link, caption or filename not a string; link or dr_webhook not an absolute http(s) URL with a host (no user info, a port only as 1 to 5 digits up to 65535); caption over 1024 characters; caption or filename empty | 1002 |
//! | id not a media id of this business_phone (unknown, deleted, another phone's) | -1 |
//! | type not the stored media's kind (inbound `voice` media is sent as `audio`) | 1002 |
//! | cus_message_id used by an earlier message (the spec: "must be globally unique") | 1002 |
//! | the sandbox already holds [`MAX_SENT`](crate::MAX_SENT) messages | 9001 |
//!
//! Readings where the vendor's page is silent:
//! - **Unknown keys.** The page lists the body's fields and one object named by `type`, and says
//!   nothing of other keys; the real gateway may well ignore them. A strict emulator refuses
//!   them, so that a client's misspelt or misplaced field (`cusMessageId`, a `caption` at the
//!   top level) shows up here instead of being dropped without a word there. The code is 1002,
//!   "a wrong body parameter" in nxcloud-signing.md's table. The objects of the types the
//!   sandbox does not emulate (`text`, `location`, `template`) are known keys: a message of
//!   such a type is refused as not emulated, and such an object beside a media message as an
//!   object of another type.
//! - **`to`.** "Digits with country code": an E.164 number, which has at most 15 digits; the
//!   shortest in use have 7 (a 3-digit country code and a 4-digit number, as Niue's).
//! - **Lengths.** The caption limit is Meta's (1024 characters); other strings are capped at
//!   1 KiB, except a `link`, which only the body's size bounds (pre-signed object-storage links
//!   run past 1 KiB).
//! - **Unknown ids.** -1, as getMedia and deleteMedia answer in this sandbox.
//!
//! Success answers `{"messaging_product":"whatsapp","messages":[{"id":..}]}` with the `cus_message_id`
//! as the id when one was given, else a fresh `wamid.` id; the message is then recorded.
//! Faults ([`crate::Fault::Code`], [`crate::Fault::WhatsAppError`]) make it answer 9003, 9005,
//! 9099 and the like without checking anything.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::log::Route;
use crate::nxcloud::{
    MAX_TEXT_FIELD, check_phone, code, fail, post_only, signed_json, success, unreadable_json,
};
use crate::outbox::{SentMessage, Unrecorded};
use crate::response::{Outcome, respond};
use crate::state::State;
use crate::text::is_digits;

/// The longest caption accepted, in characters (Meta's limit).
const MAX_CAPTION_CHARS: usize = 1024;

/// The media kinds mt sends, as the vendor names them.
const KINDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];

/// The other message types of the vendor's page, each with an object of its name; not
/// emulated.
const OTHER_TYPES: [&str; 3] = ["text", "location", "template"];

/// The body's fields common to every message, in the spec's order: the required ones, then
/// the optional ones.
const REQUIRED_FIELDS: [&str; 6] = [
    "appkey",
    "business_phone",
    "messaging_product",
    "recipient_type",
    "to",
    "type",
];
const OPTIONAL_FIELDS: [&str; 2] = ["cus_message_id", "dr_webhook"];

/// The digits of a recipient's number: E.164's at most 15, and 7 for the shortest in use.
const TO_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// A 9099 answer with `error` (JSON text) as Meta's error object, for [`crate::Fault::WhatsAppError`].
pub(crate) fn whatsapp_error(error: &str) -> Outcome {
    let body = format!(
        r#"{{"code":{},"message":"WhatsApp error","data":{{"error":{error}}}}}"#,
        code::WHATSAPP_ERROR
    );
    Outcome::new(respond(
        StatusCode::OK,
        "application/json;charset=UTF-8",
        Bytes::from(body),
    ))
    .code(code::WHATSAPP_ERROR)
    .note("Meta's error (fault)")
}

/// The object's keys in the order they came, each with every value it had: serde_json's own
/// maps keep only the last of a repeated key.
struct Pairs<V>(Vec<(String, V)>);

impl<'de, V: DeserializeOwned> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys<V>(std::marker::PhantomData<V>);
        impl<'de, V: DeserializeOwned> Visitor<'de> for Keys<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<V>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, V>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Keys(std::marker::PhantomData))
    }
}

impl<V> Pairs<V> {
    /// The first key that came more than once.
    fn repeated(&self) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(i, (k, _))| {
            self.0[..i]
                .iter()
                .any(|(earlier, _)| earlier == k)
                .then_some(k.as_str())
        })
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

type Refusal = (i64, String);

fn refuse<T>(c: i64, detail: impl Into<String>) -> Result<T, Refusal> {
    Err((c, detail.into()))
}

/// What a string field holds.
enum Text {
    Absent,
    Value(String),
}

/// A string field: absent / `null` is [`Text::Absent`]; any other type, or over 1 KiB, is 1002.
fn text(pairs: &Pairs<Box<RawValue>>, name: &str) -> Result<Text, Refusal> {
    let Some(raw) = pairs.get(name) else {
        return Ok(Text::Absent);
    };
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(None) => Ok(Text::Absent),
        Ok(Some(s)) if s.len() > MAX_TEXT_FIELD => refuse(
            code::PARAMETER_ERROR,
            format!("{name} is longer than {MAX_TEXT_FIELD} bytes"),
        ),
        Ok(Some(s)) => Ok(Text::Value(s)),
        Err(_) => refuse(code::PARAMETER_ERROR, format!("{name} must be a string")),
    }
}

/// A required string field: absent, `null` or empty is 9000.
fn required(pairs: &Pairs<Box<RawValue>>, name: &str) -> Result<String, Refusal> {
    match text(pairs, name)? {
        Text::Value(s) if !s.is_empty() => Ok(s),
        _ => refuse(
            code::PARAMETER_EXCEPTION,
            format!("{name} is missing or empty"),
        ),
    }
}

/// An optional string field: when present it must not be empty.
fn optional(pairs: &Pairs<Box<RawValue>>, name: &str) -> Result<Option<String>, Refusal> {
    match text(pairs, name)? {
        Text::Absent => Ok(None),
        Text::Value(s) if s.is_empty() => refuse(
            code::PARAMETER_ERROR,
            format!("{name} is empty (leave it out instead)"),
        ),
        Text::Value(s) => Ok(Some(s)),
    }
}

/// Whether `url` is an absolute `http`/`https` URL with a host, and nothing HTTP cannot carry.
fn is_http_url(url: &str) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    // `http::Uri` takes any text after the host's `:` as the port: check it here.
    let port_is_valid = |after_host: &str| {
        after_host.is_empty()
            || after_host.strip_prefix(':').is_some_and(|port| {
                (1..=5).contains(&port.len())
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok()
            })
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some_and(|a| {
            !a.host().is_empty()
                && !a.as_str().contains('@')
                && a.as_str().get(a.host().len()..).is_some_and(port_is_valid)
        })
}

/// A message as read from the body, before the account and the store are consulted.
struct Message {
    appkey: String,
    business_phone: String,
    to: String,
    kind: &'static str,
    id: Option<String>,
    link: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    cus_message_id: Option<String>,
    dr_webhook: Option<String>,
}

/// The body's shape and values (the module's table, down to the links), without the account.
fn parse(bytes: &[u8]) -> Result<Message, Refusal> {
    let pairs: Pairs<Box<RawValue>> = serde_json::from_slice(bytes).map_err(unreadable_json)?;
    if let Some(key) = pairs.repeated() {
        return refuse(
            code::PARAMETER_ERROR,
            format!("field {key} is sent more than once"),
        );
    }
    // The object named by `type` is known whatever the type (an unknown type is refused as
    // such below, which says more).
    let named = pairs
        .get("type")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    let known = |key: &str| {
        REQUIRED_FIELDS.contains(&key)
            || OPTIONAL_FIELDS.contains(&key)
            || KINDS.contains(&key)
            || OTHER_TYPES.contains(&key)
            || named.as_deref() == Some(key)
    };
    if let Some((key, _)) = pairs.0.iter().find(|(key, _)| !known(key)) {
        return refuse(
            code::PARAMETER_ERROR,
            format!(
                "field `{}` is not a field of mt (it takes {}, and the object named by type)",
                key.chars().take(64).collect::<String>().escape_debug(),
                [REQUIRED_FIELDS.as_slice(), &OPTIONAL_FIELDS]
                    .concat()
                    .join(", ")
            ),
        );
    }
    let [appkey, business_phone, product, recipient_type, to, kind] =
        REQUIRED_FIELDS.map(|name| required(&pairs, name));
    let (appkey, business_phone, product, recipient_type, to, kind) = (
        appkey?,
        business_phone?,
        product?,
        recipient_type?,
        to?,
        kind?,
    );
    let [cus_message_id, dr_webhook] = OPTIONAL_FIELDS.map(|name| optional(&pairs, name));
    let (cus_message_id, dr_webhook) = (cus_message_id?, dr_webhook?);
    if product != "whatsapp" {
        return refuse(
            code::PARAMETER_ERROR,
            "messaging_product must be `whatsapp`",
        );
    }
    if recipient_type != "individual" {
        return refuse(code::PARAMETER_ERROR, "recipient_type must be `individual`");
    }
    let message = Message {
        appkey,
        business_phone,
        to,
        kind: "",
        id: None,
        link: None,
        caption: None,
        filename: None,
        cus_message_id,
        dr_webhook,
    };
    media_object(&pairs, &kind, message)
}

/// The object named by `type`, its `id` or `link` and the extras its kind takes.
fn media_object(
    pairs: &Pairs<Box<RawValue>>,
    kind: &str,
    mut message: Message,
) -> Result<Message, Refusal> {
    let Some(&kind) = KINDS.iter().find(|k| **k == kind) else {
        let why = if OTHER_TYPES.contains(&kind) {
            format!("type {kind} is not emulated: the sandbox sends media messages only")
        } else {
            format!("type must be one of {}", KINDS.join(", "))
        };
        return refuse(code::PARAMETER_ERROR, why);
    };
    message.kind = kind;
    if let Some(other) = KINDS
        .iter()
        .chain(&OTHER_TYPES)
        .find(|k| **k != kind && pairs.get(k).is_some())
    {
        return refuse(
            code::PARAMETER_ERROR,
            format!("object {other} does not belong to a message of type {kind}"),
        );
    }
    let raw = pairs
        .get(kind)
        .map(|raw| raw.get())
        .filter(|r| *r != "null");
    let Some(raw) = raw else {
        return refuse(
            code::PARAMETER_EXCEPTION,
            format!("object {kind} (named by type) is missing"),
        );
    };
    let object: Pairs<Value> = serde_json::from_str(raw).map_err(|_| {
        (
            code::PARAMETER_ERROR,
            format!("{kind} must be a JSON object"),
        )
    })?;
    if let Some(key) = object.repeated() {
        return refuse(
            code::PARAMETER_ERROR,
            format!("{kind}.{key} is sent more than once"),
        );
    }
    let allowed: &[&str] = match kind {
        "image" | "video" => &["id", "link", "caption"],
        "document" => &["id", "link", "filename"],
        _ => &["id", "link"],
    };
    if let Some((key, _)) = object
        .0
        .iter()
        .find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        return refuse(
            code::PARAMETER_ERROR,
            format!(
                "{kind} does not take `{key}` (it takes {})",
                allowed.join(", ")
            ),
        );
    }
    let field = |name: &str| match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => refuse(
            code::PARAMETER_ERROR,
            format!("{kind}.{name} must be a string"),
        ),
    };
    let id = field("id")?;
    let link = field("link")?;
    let caption = field("caption")?;
    let filename = field("filename")?;
    // Exactly one of the two keys, whatever their values: `{"id":"","link":"https://.."}` is
    // two sources, not one. An empty value is then a missing one (9000).
    match (&id, &link) {
        (Some(_), Some(_)) => {
            return refuse(
                code::PARAMETER_ERROR,
                format!("{kind} has both id and link (exactly one)"),
            );
        }
        (None, None) => {
            return refuse(
                code::PARAMETER_EXCEPTION,
                format!("{kind} has neither id nor link"),
            );
        }
        _ => {}
    }
    if let Some(empty) = [("id", &id), ("link", &link)]
        .into_iter()
        .find_map(|(name, value)| value.as_deref().is_some_and(str::is_empty).then_some(name))
    {
        return refuse(
            code::PARAMETER_EXCEPTION,
            format!("{kind}.{empty} is empty"),
        );
    }
    if let Some(id) = &id
        && id.len() > MAX_TEXT_FIELD
    {
        return refuse(code::PARAMETER_ERROR, format!("{kind}.id is too long"));
    }
    if link.as_deref().is_some_and(|l| !is_http_url(l)) {
        return refuse(
            code::PARAMETER_ERROR,
            format!("{kind}.link must be an absolute http or https URL"),
        );
    }
    if caption
        .as_deref()
        .is_some_and(|c| c.is_empty() || c.chars().count() > MAX_CAPTION_CHARS)
    {
        return refuse(
            code::PARAMETER_ERROR,
            format!("{kind}.caption must have 1 to {MAX_CAPTION_CHARS} characters"),
        );
    }
    if filename
        .as_deref()
        .is_some_and(|f| f.is_empty() || f.len() > MAX_TEXT_FIELD)
    {
        return refuse(
            code::PARAMETER_ERROR,
            format!("{kind}.filename must have 1 to {MAX_TEXT_FIELD} bytes"),
        );
    }
    if message
        .dr_webhook
        .as_deref()
        .is_some_and(|u| !is_http_url(u))
    {
        return refuse(
            code::PARAMETER_ERROR,
            "dr_webhook must be an absolute http or https URL",
        );
    }
    Ok(Message {
        id,
        link,
        caption,
        filename,
        ..message
    })
}

pub(crate) async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Outcome {
    let (parts, body) = match post_only(req) {
        Ok(request) => request,
        Err(out) => return *out,
    };
    let (auth, bytes) = match signed_json(state, Route::SendMessage, &parts, body).await {
        Ok(signed) => signed,
        Err(out) => return *out,
    };
    let message = match parse(&bytes) {
        Ok(message) => message,
        Err((c, detail)) => return fail(c, detail),
    };
    let account = auth.account;
    if !account.appkeys.contains(&message.appkey) {
        return fail(
            code::APP_UNAVAILABLE,
            "appkey is not an application of this account",
        );
    }
    if let Err(out) = check_phone(account, &message.business_phone) {
        return *out;
    }
    if !is_digits(&message.to) || !TO_DIGITS.contains(&message.to.len()) {
        return fail(
            code::PARAMETER_ERROR,
            format!(
                "to must be the recipient's WhatsApp number, {} to {} digits with the country code",
                TO_DIGITS.start(),
                TO_DIGITS.end()
            ),
        );
    }
    if let Some(id) = &message.id {
        let media = state
            .store
            .get(id)
            .filter(|m| m.visible_to_phone(&message.business_phone));
        let Some(media) = media else {
            return fail(
                code::REQUEST_FAILED,
                "media not found (unknown, deleted, or not this business_phone's)",
            );
        };
        let stored = if media.msg_type == "voice" {
            "audio"
        } else {
            media.msg_type.as_str()
        };
        if stored != message.kind {
            return fail(
                code::PARAMETER_ERROR,
                format!(
                    "type {} does not match the media's type ({stored})",
                    message.kind
                ),
            );
        }
    }
    let note = format!("sent {} to {}", message.kind, message.to);
    let id = match &message.cus_message_id {
        Some(id) => id.clone(),
        None => format!("wamid.sandbox.{:032x}", state.random_u128()),
    };
    let sent = SentMessage {
        id: id.clone(),
        appkey: message.appkey,
        business_phone: message.business_phone,
        to: message.to,
        kind: message.kind.to_owned(),
        media_id: message.id,
        link: message.link,
        caption: message.caption,
        filename: message.filename,
        cus_message_id: message.cus_message_id,
        dr_webhook: message.dr_webhook,
        at_ms: state.clock.now_ms(),
    };
    match state.outbox.record(sent) {
        Ok(()) => {}
        Err(Unrecorded::Full) => {
            return fail(
                code::SYSTEM_BUSINESS_ERROR,
                "the sandbox holds as many sent messages as it keeps",
            );
        }
        Err(Unrecorded::CusMessageIdUsed) => {
            return fail(
                code::PARAMETER_ERROR,
                "cus_message_id was already used by an earlier message (it must be globally unique)",
            );
        }
    }
    success(json!({
        "messaging_product": "whatsapp",
        "messages": [{ "id": id }],
    }))
    .note(note)
}
