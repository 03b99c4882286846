//! Properties of the whole module: no parser panics on any bytes, and no id leaves its path
//! segment.

use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::InvalidInput;
use crate::download::DownloadCheck;
use crate::operation::BaseUrl;
use crate::time::Timestamp;
use crate::wa::validate_media_id;

/// JSON values built from the keys the parsers look for, so that the fuzzing reaches past the
/// first shape check.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("media_items".to_owned()),
        Just("media".to_owned()),
        Just("users".to_owned()),
        Just("errors".to_owned()),
        Just("meta".to_owned()),
        Just("type".to_owned()),
        Just("image".to_owned()),
        Just("voice".to_owned()),
        Just("id".to_owned()),
        Just("code".to_owned()),
        Just("title".to_owned()),
        Just("details".to_owned()),
        Just("status".to_owned()),
        Just("sha256".to_owned()),
        Just("mime_type".to_owned()),
        Just("token".to_owned()),
        Just("expires_after".to_owned()),
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("image".to_owned()),
            Just("downloaded".to_owned()),
            Just("2018-03-01 15:29:26+00:00".to_owned()),
            "\\PC{0,10}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Runs every parser of the module on `body`; none may panic.
fn parse_everything(status: u16, body: &[u8]) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = HeaderMap::new();
    let _ = parse_media_notification(body);
    let _ = parse_errors(body);
    let _ = parse_response(&Login::new(), status, &headers, body);
    let _ = parse_response(&UploadMedia::new("image/png", 1), status, &headers, body);
    let _ = parse_response(&RetrieveMedia::new("m"), status, &headers, body);
    let _ = parse_response(&DeleteMedia::new("m"), status, &headers, body);
    let _ = parse_response(&RetryDownload::new("m"), status, &headers, body);
    let mut pending = PendingDownloads::new();
    pending.register("m");
    if let Ok(items) = parse_media_notification(body) {
        let done = pending.feed(items);
        assert!(done.len() <= 1);
    }
}

fn check_media_paths(id: &str) {
    let base = BaseUrl::parse("https://wa.example.internal:9090").unwrap();
    let token = Token::from_parts("t", None);
    let retrieve = build_request(&RetrieveMedia::new(id), &base, Auth::Bearer(&token));
    let download = build_request(&RetryDownload::new(id), &base, Auth::Bearer(&token));
    if validate_media_id(id).is_err() {
        assert!(matches!(retrieve, Err(InvalidInput::MediaId { .. })));
        assert!(matches!(download, Err(InvalidInput::MediaId { .. })));
        return;
    }
    let (retrieve, download) = (retrieve.unwrap(), download.unwrap());
    for (request, tail) in [(&retrieve, None), (&download, Some("download"))] {
        let uri = request.uri();
        assert_eq!(uri.query(), None);
        assert_eq!(uri.host(), Some("wa.example.internal"));
        let segments: Vec<&str> = uri.path().strip_prefix('/').unwrap().split('/').collect();
        let expected_len = if tail.is_some() { 4 } else { 3 };
        assert_eq!(segments.len(), expected_len, "{id:?} -> {}", uri.path());
        assert_eq!(&segments[..2], ["v1", "media"]);
        assert_eq!(segments.get(3).copied(), tail);
        let encoded = segments[2];
        assert!(encoded != "." && encoded != "..", "{id:?} -> {encoded}");
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{encoded}"
        );
        assert_eq!(percent_decode_str(encoded).decode_utf8().unwrap(), id);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_parser_panics_on_bytes(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_everything(status, &body);
    }

    #[test]
    fn no_parser_panics_on_json(status in prop_oneof![Just(200u16), Just(201), Just(404), 100u16..600], value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        parse_everything(status, &body);
        // The same value under each top-level key the parsers look for.
        for key in ["media_items", "errors", "users", "media"] {
            let wrapped = serde_json::to_vec(&serde_json::json!({ key: [value.clone()] })).unwrap();
            parse_everything(status, &wrapped);
        }
    }

    #[test]
    fn no_panic_on_expiry_text(text in "\\PC{0,40}", digits in "[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([+-][0-9]{2}:[0-9]{2}|Z)?") {
        let _ = parse_expires_after(&text);
        let _ = parse_expires_after(&digits);
    }

    #[test]
    fn expiry_round_trips(secs in 0u64..253_402_300_800) {
        let at = Timestamp::from_millis(secs * 1000);
        prop_assert_eq!(parse_expires_after(&format_expires_after(at)), Some(at));
    }

    #[test]
    fn no_panic_on_retrieve_heads(status in 100u16..600, length in prop::collection::vec(any::<u8>(), 0..24), kind in prop::collection::vec(any::<u8>(), 0..24)) {
        let status = StatusCode::from_u16(status).unwrap();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&length) {
            headers.insert(http::header::CONTENT_LENGTH, value);
        }
        if let Ok(value) = HeaderValue::from_bytes(&kind) {
            headers.insert(http::header::CONTENT_TYPE, value);
        }
        if let Ok(RetrieveHead::Media(media)) = RetrieveMedia::new("m").classify(status, &headers) {
            let _ = media.begin_check(DownloadCheck::new(1 << 20));
        }
    }

    #[test]
    fn arbitrary_ids_stay_one_segment(id in any::<String>()) {
        check_media_paths(&id);
    }

    #[test]
    fn hostile_ids_stay_one_segment(id in "[./?#%;=&+ a\\\\\u{e9}\u{202e}-]{0,12}") {
        check_media_paths(&id);
    }
}

#[test]
fn dot_ids_stay_one_segment() {
    for id in [
        ".", "..", "...", "%2e", "%2E%2E", "./", "../", "/..", "?", "#", "a/../b",
    ] {
        check_media_paths(id);
    }
}

mod token_slot {
    use crate::Timestamp;
    use crate::onprem::{AfterRejection, Token, TokenSlot};

    const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn token(name: &str, expires_ms: u64) -> Token {
        Token::from_parts(name, Some(Timestamp::from_millis(expires_ms)))
    }

    #[test]
    fn logs_in_first_then_reuses_until_the_margin() {
        let mut slot = TokenSlot::new(None);
        assert!(slot.usable(NOW, 60_000).is_none(), "no token yet: log in");
        slot.store(token("a", NOW.as_millis() + 120_000));
        assert_eq!(slot.usable(NOW, 60_000).unwrap().expose(), "a");
        assert!(
            slot.usable(NOW, 120_000).is_none(),
            "within the margin: log in again"
        );
    }

    #[test]
    fn a_401_logs_in_once_unless_already_replaced() {
        let mut slot = TokenSlot::new(None);
        let first = token("a", u64::MAX);
        slot.store(first.clone());
        assert_eq!(slot.after_rejection(&first), AfterRejection::LogIn);
        let second = token("b", u64::MAX);
        slot.store(second.clone());
        assert_eq!(
            slot.after_rejection(&first),
            AfterRejection::Replaced(second)
        );
    }

    #[test]
    fn a_given_token_is_always_used_and_never_renewed() {
        let given = token("given", 0);
        let slot = TokenSlot::new(Some(given.clone()));
        assert_eq!(slot.usable(NOW, 60_000), Some(given.clone()));
        assert!(!slot.can_log_in());
        assert_eq!(slot.after_rejection(&given), AfterRejection::Final);
    }
}

mod waiters {
    use crate::onprem::{MediaItemStatus, Waiters, parse_media_notification};

    fn downloaded(id: &str) -> Vec<MediaItemStatus> {
        let body = format!(
            r#"{{"media_items":[{{"image":{{"id":"{id}","mime_type":"image/png","status":"downloaded"}},"type":"image"}}]}}"#
        );
        parse_media_notification(body.as_bytes()).unwrap()
    }

    #[test]
    fn completes_each_wait_once_and_ignores_others() {
        let mut waiters = Waiters::new();
        let (_, replaced) = waiters.expect("a", "handle-a");
        assert!(replaced.is_none());
        assert!(waiters.feed(downloaded("other")).is_empty());
        let done = waiters.feed(downloaded("a"));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "handle-a");
        assert!(waiters.feed(downloaded("a")).is_empty(), "completed once");
        assert!(waiters.is_empty());
    }

    #[test]
    fn a_replaced_wait_cannot_cancel_its_successor() {
        let mut waiters = Waiters::new();
        let (first, _) = waiters.expect("a", 1);
        let (second, replaced) = waiters.expect("a", 2);
        assert_eq!(replaced, Some(1));
        assert!(!waiters.cancel("a", first));
        assert_eq!(waiters.len(), 1);
        assert!(waiters.cancel("a", second));
        assert!(waiters.feed(downloaded("a")).is_empty());
    }
}
