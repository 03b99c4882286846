//! `POST /api/wa/mt` driven with raw, hand-written bodies: every check of the module's table,
//! the record of sent messages and its admin endpoint, and the faults that answer 9003, 9005
//! and 9099.

mod common;

use common::*;
use nx_sandbox::{
    DEMO_APPKEY, DEMO_BUSINESS_PHONE, DEMO_CUSTOMER_PHONE, Fault, FaultRule, Inbound,
    META_INVALID_PARAMETER, Route, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).unwrap()
}

async fn mt(sandbox: &Sandbox, body: &[u8]) -> Answer {
    let signed = Signed::new(sandbox, "mt");
    send(
        sandbox.addr(),
        signed.json(sandbox.addr(), "/api/wa/mt", body),
    )
    .await
    .unwrap()
}

/// A valid message body with `media` as the object named by `kind`, and `extra` merged in.
fn message(kind: &str, media: Value, extra: Value) -> Vec<u8> {
    let mut body = json!({
        "appkey": DEMO_APPKEY,
        "business_phone": DEMO_BUSINESS_PHONE,
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": DEMO_CUSTOMER_PHONE,
        "type": kind,
    });
    body[kind] = media;
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    serde_json::to_vec(&body).unwrap()
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake png";
const PDF: &[u8] = b"%PDF-1.4 fake";

#[tokio::test]
async fn sends_by_id_and_link_are_answered_and_recorded() {
    let sandbox = start();
    let image = upload(&sandbox, "image/png", "a.png", PNG).await;
    // The spec's example, byte for byte in its key order.
    let body = format!(
        r#"{{"appkey":"{DEMO_APPKEY}","business_phone":"{DEMO_BUSINESS_PHONE}","messaging_product":"whatsapp","recipient_type":"individual","to":"{DEMO_CUSTOMER_PHONE}","type":"image","image":{{"id":"{image}","caption":"image test"}}}}"#
    );
    let answer = mt(&sandbox, body.as_bytes()).await;
    let json = answer.json();
    assert_eq!(json["code"], 0, "{json}");
    assert_eq!(json["data"]["messaging_product"], "whatsapp");
    let id = json["data"]["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("wamid."), "{id}");

    let by_link = mt(
        &sandbox,
        &message(
            "document",
            json!({"link": "https://cdn.example/q3.pdf?sig=1", "filename": "q3.pdf"}),
            json!({"cus_message_id": "order-7", "dr_webhook": "https://hooks.example/dr"}),
        ),
    )
    .await
    .json();
    assert_eq!(by_link["code"], 0, "{by_link}");
    // The caller's id is the message id.
    assert_eq!(by_link["data"]["messages"][0]["id"], "order-7");

    let sent = sandbox.sent_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].id, id);
    assert_eq!(sent[0].kind, "image");
    assert_eq!(sent[0].media_id.as_deref(), Some(image.as_str()));
    assert_eq!(sent[0].caption.as_deref(), Some("image test"));
    assert_eq!(sent[0].to, DEMO_CUSTOMER_PHONE);
    assert_eq!(
        sent[1].link.as_deref(),
        Some("https://cdn.example/q3.pdf?sig=1")
    );
    assert_eq!(sent[1].filename.as_deref(), Some("q3.pdf"));
    assert_eq!(sent[1].cus_message_id.as_deref(), Some("order-7"));
    assert_eq!(
        sent[1].dr_webhook.as_deref(),
        Some("https://hooks.example/dr")
    );

    let listed = get(sandbox.addr(), "/_sandbox/messages").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[1]["type"], "document");
    assert_eq!(listed[1]["cus_message_id"], "order-7");
    assert_eq!(sandbox.log().for_route(Route::SendMessage).len(), 2);
}

#[tokio::test]
async fn every_rule_answers_its_code() {
    let sandbox = start();
    let image = upload(&sandbox, "image/png", "a.png", PNG).await;
    let doc = upload(&sandbox, "application/pdf", "a.pdf", PDF).await;
    let id = || json!({ "id": image });
    let base = |kind: &str, media: Value| message(kind, media, json!({}));
    // A body with one top-level field replaced (or, with `null`, made null).
    let with = |field: &str, value: Value| message("image", id(), json!({ field: value }));
    let without = |field: &str| {
        let mut body: Value = serde_json::from_slice(&base("image", id())).unwrap();
        body.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&body).unwrap()
    };
    let long = "a".repeat(1025);
    let cases: Vec<(Vec<u8>, i64, &str)> = vec![
        (b"[1]".to_vec(), 9000, "JSON object"),
        (b"{\"appkey\":".to_vec(), 9000, "not valid JSON"),
        (
            format!(r#"{{"to":"1","to":"2","appkey":"{DEMO_APPKEY}"}}"#).into_bytes(),
            1002,
            "more than once",
        ),
        (without("appkey"), 9000, "appkey"),
        (without("recipient_type"), 9000, "recipient_type"),
        (with("to", json!("")), 9000, "to"),
        (with("type", Value::Null), 9000, "type"),
        (with("to", json!(8613900139000u64)), 1002, "to must be a string"),
        (with("appkey", json!(long)), 1002, "longer than"),
        (with("cus_message_id", json!("")), 1002, "cus_message_id"),
        (with("dr_webhook", json!(7)), 1002, "dr_webhook"),
        (with("messaging_product", json!("WhatsApp")), 1002, "messaging_product"),
        (with("recipient_type", json!("group")), 1002, "recipient_type"),
        (with("appkey", json!("someone-elses")), 9003, "appkey"),
        (with("business_phone", json!("+8613800138000")), 9002, "business_phone"),
        (with("business_phone", json!("8613800138999")), 9006, "bound"),
        (with("to", json!("86 139")), 1002, "to must be"),
        (with("to", json!("861390")), 1002, "7 to 15 digits"),
        (with("to", json!("8613900139000123")), 1002, "7 to 15 digits"),
        // Unknown top-level keys: misspelt, misplaced, or of no type at all.
        (with("cusMessageId", json!("order-7")), 1002, "field `cusMessageId` is not a field of mt"),
        (with("caption", json!("at the top")), 1002, "field `caption` is not a field of mt"),
        (with("", json!(1)), 1002, "field `` is not a field of mt"),
        (with("interactive", json!({})), 1002, "field `interactive`"),
        // Another type's object beside a media message, emulated or not.
        (with("text", json!({"body": "hi"})), 1002, "object text does not belong"),
        (with("location", json!({})), 1002, "object location does not belong"),
        (message("text", json!({"body": "hi"}), json!({})), 1002, "not emulated"),
        (message("gif", id(), json!({})), 1002, "type must be"),
        (without("image"), 9000, "object image"),
        (with("image", Value::Null), 9000, "object image"),
        (with("image", json!("x")), 1002, "JSON object"),
        (with("video", id()), 1002, "object video"),
        (
            format!(r#"{{"appkey":"{DEMO_APPKEY}","business_phone":"{DEMO_BUSINESS_PHONE}","messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"image","image":{{"id":"a","id":"b"}}}}"#).into_bytes(),
            1002,
            "image.id is sent more than once",
        ),
        (base("image", json!({})), 9000, "neither id nor link"),
        (base("image", json!({"id": ""})), 9000, "image.id is empty"),
        (base("image", json!({"id": "", "link": "https://a/b.png"})), 1002, "both"),
        (base("image", json!({"id": image, "link": ""})), 1002, "both"),
        (base("image", json!({"id": image, "link": "https://a/b.png"})), 1002, "both"),
        (base("image", json!({"id": 42})), 1002, "image.id must be a string"),
        (base("audio", json!({"id": "x", "caption": "c"})), 1002, "does not take `caption`"),
        (base("image", json!({"id": "x", "filename": "f"})), 1002, "does not take `filename`"),
        (base("sticker", json!({"link": "https://a/b", "url": "u"})), 1002, "`url`"),
        (base("image", json!({"link": "ftp://cdn.example/a.png"})), 1002, "link"),
        (base("image", json!({"link": "cdn.example/a.png"})), 1002, "link"),
        (base("image", json!({"link": "https://cdn.example:abc/a.png"})), 1002, "link"),
        (base("image", json!({"link": "https://cdn.example:99999/a.png"})), 1002, "link"),
        (base("image", json!({"link": "https://cdn.example:/a.png"})), 1002, "link"),
        (base("image", json!({"link": "https://cdn.example:+443/a.png"})), 1002, "link"),
        (base("image", json!({"link": "https://u:p@cdn.example/a.png"})), 1002, "link"),
        (with("dr_webhook", json!("https://hooks.example:8o8o/dr")), 1002, "dr_webhook"),
        (base("image", json!({"id": image, "caption": ""})), 1002, "caption"),
        (base("image", json!({"id": image, "caption": "é".repeat(1025)})), 1002, "caption"),
        (base("document", json!({"id": doc, "filename": ""})), 1002, "filename"),
        (with("dr_webhook", json!("hooks.example/dr")), 1002, "dr_webhook"),
        (base("image", json!({"id": "no-such-media"})), -1, "media not found"),
        (base("document", json!({"id": image})), 1002, "does not match the media's type (image)"),
        (base("image", json!({"id": doc})), 1002, "(document)"),
    ];
    for (body, code, detail) in cases {
        let json = mt(&sandbox, &body).await.json();
        let shown = String::from_utf8_lossy(&body);
        assert_eq!(json["code"], code, "{shown}: {json}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(detail), "{shown}: {message}");
    }
    assert!(
        sandbox.sent_messages().is_empty(),
        "nothing refused is recorded"
    );

    // An unknown key is named, cut to 64 characters.
    let json = mt(&sandbox, &with(&"k".repeat(5000), json!(1)))
        .await
        .json();
    assert_eq!(json["code"], 1002, "{json}");
    let shown = json["message"].as_str().unwrap();
    assert!(shown.contains(&format!("`{}`", "k".repeat(64))), "{shown}");
    assert!(shown.len() < 300, "{shown}");

    // A caption of 1024 characters of any width is fine; so are the bounds of `to`, a port,
    // an IPv6 host with one, a `null` optional field and a link past 1 KiB.
    let long_link = format!("https://[::1]:65535/a.png?Signature={}", "s".repeat(2000));
    let fine = [
        base("image", json!({"id": image, "caption": "é".repeat(1024)})),
        message("image", id(), json!({"to": "6831234"})),
        message("image", id(), json!({"to": "861390013900012"})),
        message("image", id(), json!({"cus_message_id": null})),
        base("image", json!({"link": "http://cdn.example:8080/a.png"})),
        base("sticker", json!({"link": long_link})),
        message(
            "image",
            id(),
            json!({"dr_webhook": "https://[2001:db8::1]:443/dr"}),
        ),
    ];
    for body in fine {
        let ok = mt(&sandbox, &body).await;
        assert_eq!(
            ok.code(),
            0,
            "{}: {}",
            String::from_utf8_lossy(&body),
            ok.json()
        );
    }
}

#[tokio::test]
async fn cus_message_id_must_be_unique_and_another_phones_media_is_not_found() {
    let sandbox = Sandbox::start(
        SandboxConfig::default().account(
            nx_sandbox::Account::new("other-key", "other-secret")
                .phone("8613700137000")
                .appkey("other-app"),
        ),
    )
    .unwrap();
    let image = upload(&sandbox, "image/png", "a.png", PNG).await;
    let body = message(
        "image",
        json!({ "id": image }),
        json!({"cus_message_id": "m-1"}),
    );
    assert_eq!(mt(&sandbox, &body).await.code(), 0);
    let again = mt(&sandbox, &body).await.json();
    assert_eq!(again["code"], 1002, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("globally unique")
    );
    assert_eq!(sandbox.sent_messages().len(), 1);

    // The other account's phone cannot send the demo phone's media.
    let mut signed = Signed::new(&sandbox, "mt");
    signed.key = "other-key".into();
    signed.secret = "other-secret".into();
    let mut theirs: Value =
        serde_json::from_slice(&message("image", json!({ "id": image }), json!({}))).unwrap();
    theirs["appkey"] = json!("other-app");
    theirs["business_phone"] = json!("8613700137000");
    let theirs = serde_json::to_vec(&theirs).unwrap();
    let answer = send(
        sandbox.addr(),
        signed.json(sandbox.addr(), "/api/wa/mt", &theirs),
    )
    .await
    .unwrap();
    assert_eq!(answer.code(), -1, "{}", answer.json());
    // The demo account does not own the other application.
    let mut foreign: Value = serde_json::from_slice(&body).unwrap();
    foreign["appkey"] = json!("other-app");
    foreign["cus_message_id"] = json!("m-2");
    assert_eq!(
        mt(&sandbox, &serde_json::to_vec(&foreign).unwrap())
            .await
            .code(),
        9003
    );
}

#[tokio::test]
async fn inbound_voice_is_sent_as_audio_and_signing_is_checked() {
    let sandbox = start();
    let voice = sandbox
        .receive_inbound(Inbound::new(
            "voice",
            "audio/ogg",
            b"OggS fake voice".to_vec(),
        ))
        .unwrap();
    let body = message("audio", json!({ "id": voice.media_id }), json!({}));
    assert_eq!(mt(&sandbox, &body).await.code(), 0);

    // The body is signed: one byte changed after signing is 1003.
    let signed = Signed::new(&sandbox, "mt");
    let mut request = signed.json(sandbox.addr(), "/api/wa/mt", &body);
    let mut tampered = body.clone();
    tampered[2] ^= 1;
    *request.body_mut() = http_body_util::Full::new(bytes::Bytes::from(tampered));
    assert_eq!(send(sandbox.addr(), request).await.unwrap().code(), 1003);
    // The action must be mt's.
    let wrong = Signed::new(&sandbox, "send");
    let answer = send(
        sandbox.addr(),
        wrong.json(sandbox.addr(), "/api/wa/mt", &body),
    )
    .await
    .unwrap();
    assert_eq!(answer.code(), 1002);
    assert_eq!(sandbox.sent_messages().len(), 1);
}

#[tokio::test]
async fn faults_answer_9003_9005_and_9099() {
    let sandbox = start();
    let image = upload(&sandbox, "image/png", "a.png", PNG).await;
    let body = message("image", json!({ "id": image }), json!({}));
    for code in [9003, 9005] {
        let rule = sandbox
            .faults()
            .add(FaultRule::new(Route::SendMessage, Fault::Code(code)).first(1));
        let json = mt(&sandbox, &body).await.json();
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["data"], Value::Null);
        sandbox.faults().remove(rule);
    }
    let json = mt(&sandbox, &body).await.json();
    assert_eq!(json["code"], 0);

    sandbox.faults().add(
        FaultRule::new(
            Route::SendMessage,
            Fault::WhatsAppError(META_INVALID_PARAMETER.into()),
        )
        .first(1),
    );
    let json = mt(&sandbox, &body).await.json();
    assert_eq!(json["code"], 9099);
    assert_eq!(json["message"], "WhatsApp error");
    assert_eq!(json["data"]["error"]["code"], 100);
    assert_eq!(json["data"]["error"]["type"], "OAuthException");
    assert_eq!(
        json["data"]["error"]["fbtrace_id"],
        "AmCuD7sOjcEDetBNhlT2cJm"
    );
    assert_eq!(
        json["data"]["error"]["error_data"]["details"],
        "Invalid parameter"
    );
    // Refused messages are not recorded.
    assert_eq!(sandbox.sent_messages().len(), 1);
}
