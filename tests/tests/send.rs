//! Sending media messages (mt), written once and run against both transports: by id, by link,
//! upload-and-send, Meta's 9099 error, the other refusals, and that a send whose answer was lost
//! is never sent again.

use std::time::{Duration, Instant};

use nx_conformance::{AsyncDriver, BlockingDriver, Driver, PNG_1X1, Source, World, pattern};
use nx_protocol::error::Error;
use nx_protocol::wa::{MediaKind, MediaSource, MessageDetails, MetaErrorCode, SendMedia};
use nx_protocol::{ApiCode, InvalidInput};
use nx_sandbox::{
    DEMO_BUSINESS_PHONE as PHONE, DEMO_CUSTOMER_PHONE as CUSTOMER, Fault, FaultRule,
    META_INVALID_PARAMETER, Route, SandboxConfig,
};

fn upload_png<D: Driver>(world: &World<D>) -> String {
    world
        .client
        .upload_media(
            PHONE,
            "image/png",
            Source::Bytes(PNG_1X1.to_vec(), "one.png"),
        )
        .expect("upload")
        .id
}

fn image(id: &str) -> SendMedia {
    SendMedia::new(PHONE, CUSTOMER, MediaKind::Image, MediaSource::id(id))
}

fn sends(world: &World<impl Driver>) -> usize {
    world.sandbox.log().for_route(Route::SendMessage).len()
}

/// By id, with a caption; a document with a file name and the caller's message id.
fn send_by_id<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    let sent = world
        .client
        .send_media(image(&id).with_details(MessageDetails::new().caption("牛小信 says hi")))
        .unwrap();
    let recorded = world.sandbox.sent_messages();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].id, sent.id);
    assert_eq!(recorded[0].kind, "image");
    assert_eq!(recorded[0].media_id.as_deref(), Some(id.as_str()));
    assert_eq!(recorded[0].caption.as_deref(), Some("牛小信 says hi"));
    assert_eq!(recorded[0].to, CUSTOMER);

    let pdf = world
        .client
        .upload_media(
            PHONE,
            "application/pdf",
            Source::Bytes(pattern(1000), "q3.pdf"),
        )
        .unwrap()
        .id;
    let doc = SendMedia::new(PHONE, CUSTOMER, MediaKind::Document, MediaSource::id(&pdf))
        .with_details(
            MessageDetails::new()
                .filename("Q3 report.pdf")
                .message_id("order-7-report"),
        );
    let sent = world.client.send_media(doc).unwrap();
    assert_eq!(
        sent.id, "order-7-report",
        "the caller's id is the message id"
    );
    let recorded = &world.sandbox.sent_messages()[1];
    assert_eq!(recorded.filename.as_deref(), Some("Q3 report.pdf"));
    assert_eq!(recorded.cus_message_id.as_deref(), Some("order-7-report"));
    assert_eq!(sends(&world), 2);
}

/// By link (the link's query goes to the server as given), with a per-call appkey.
fn send_by_link<D: Driver>() {
    let world = World::<D>::new();
    let link = "https://cdn.example/promo.mp4?Expires=1&Signature=abc";
    let sent = world
        .client
        .send_media(
            SendMedia::new(PHONE, CUSTOMER, MediaKind::Video, MediaSource::link(link))
                .with_details(
                    MessageDetails::new()
                        .caption("new")
                        .dr_webhook("https://hooks.example/dr"),
                ),
        )
        .unwrap();
    let recorded = &world.sandbox.sent_messages()[0];
    assert_eq!(recorded.id, sent.id);
    assert_eq!(recorded.link.as_deref(), Some(link));
    assert_eq!(recorded.media_id, None);
    assert_eq!(
        recorded.dr_webhook.as_deref(),
        Some("https://hooks.example/dr")
    );

    // The message's own appkey wins over the client's: an unknown one is 9003, not retried.
    let result = world.client.send_media(
        SendMedia::new(PHONE, CUSTOMER, MediaKind::Sticker, MediaSource::link(link))
            .with_details(MessageDetails::new().appkey("not-our-app")),
    );
    assert_eq!(
        result.unwrap_err().api_code(),
        Some(ApiCode::APP_UNAVAILABLE)
    );
    assert_eq!(sends(&world), 2);
}

/// Upload and send in one call: the media id and the message; a message that would be refused
/// costs no upload.
fn upload_and_send<D: Driver>() {
    let world = World::<D>::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manual.pdf");
    std::fs::write(&path, pattern(50_000)).unwrap();
    let done = world
        .client
        .upload_and_send(
            PHONE,
            CUSTOMER,
            "application/pdf",
            Source::Path(&path),
            MessageDetails::new().filename("manual.pdf"),
        )
        .unwrap();
    let recorded = &world.sandbox.sent_messages()[0];
    assert_eq!(recorded.kind, "document");
    assert_eq!(recorded.media_id.as_deref(), Some(done.media_id.as_str()));
    assert_eq!(recorded.id, done.message.id);
    assert_eq!(
        world
            .client
            .get_media(PHONE, &done.media_id)
            .unwrap()
            .mime_type(),
        "application/pdf"
    );

    let uploads = world.sandbox.log().for_route(Route::UploadMedia).len();
    let refused = world.client.upload_and_send(
        PHONE,
        CUSTOMER,
        "application/pdf",
        Source::Path(&path),
        MessageDetails::new().caption("documents take no caption"),
    );
    assert!(
        matches!(
            refused,
            Err(Error::InvalidInput(InvalidInput::MessageField {
                field: "caption",
                ..
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        world.sandbox.log().for_route(Route::UploadMedia).len(),
        uploads
    );
    assert_eq!(sends(&world), 1);
}

/// 9099 carries Meta's error, typed and shown; it is not retried. Odd shapes never cost the code.
fn whatsapp_error_is_typed<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    world.sandbox.faults().add(
        FaultRule::new(
            Route::SendMessage,
            Fault::WhatsAppError(META_INVALID_PARAMETER.into()),
        )
        .first(1),
    );
    let err = world.client.send_media(image(&id)).unwrap_err();
    let Error::Response(response) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(response.api_code(), Some(ApiCode::WHATSAPP_ERROR));
    let meta = response.whatsapp_error().expect("Meta's error object");
    assert_eq!(meta.code, Some(MetaErrorCode::Number(100)));
    assert_eq!(meta.error_type.as_deref(), Some("OAuthException"));
    assert_eq!(meta.message.as_deref(), Some("(#100) Invalid parameter"));
    assert_eq!(meta.details.as_deref(), Some("Invalid parameter"));
    assert_eq!(meta.fbtrace_id.as_deref(), Some("AmCuD7sOjcEDetBNhlT2cJm"));
    let shown = err.to_string();
    assert!(shown.contains("9099"), "{shown}");
    assert!(shown.contains("(#100) Invalid parameter"), "{shown}");
    assert!(
        shown.contains("fbtrace_id AmCuD7sOjcEDetBNhlT2cJm"),
        "{shown}"
    );
    assert_eq!(sends(&world), 1);

    // The code as a string, an unknown extra, a huge message: typed, bounded, never a panic.
    let huge = "m".repeat(100_000);
    world.sandbox.faults().add(
        FaultRule::new(
            Route::SendMessage,
            Fault::WhatsAppError(format!(
                r#"{{"code":"131026","message":"{huge}","type":["odd"],"extra":{{"a":1}}}}"#
            )),
        )
        .first(1),
    );
    let err = world.client.send_media(image(&id)).unwrap_err();
    let meta = match &err {
        Error::Response(r) => r.whatsapp_error().cloned().expect("still read"),
        other => panic!("{other:?}"),
    };
    assert_eq!(meta.code, Some(MetaErrorCode::Number(131_026)));
    assert_eq!(meta.error_type, None);
    assert!(meta.message.unwrap().chars().count() <= 501);
    assert!(err.to_string().len() < 3000);
    assert_eq!(sends(&world), 2);
    assert!(world.sandbox.sent_messages().is_empty());
}

/// The account's refusals (9003 by a fault, 9005) surface typed, each after one request.
fn refusal_codes_are_typed_and_not_retried<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    for code in [
        ApiCode::APP_UNAVAILABLE,
        ApiCode::INSUFFICIENT_BALANCE,
        ApiCode::DOWNSTREAM_ERROR,
        ApiCode::SYSTEM_BUSINESS_ERROR,
    ] {
        let before = sends(&world);
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::SendMessage, Fault::Code(code.get())).first(1));
        let err = world.client.send_media(image(&id)).unwrap_err();
        assert_eq!(err.api_code(), Some(code), "{err}");
        assert_eq!(sends(&world), before + 1, "{code:?} was resent");
        world.sandbox.faults().clear();
    }
    assert!(world.sandbox.sent_messages().is_empty());
}

/// A send whose answer may have been lost (reset after processing, reset, 502, 503, a cut
/// answer, a timeout) is reported and never resent: the customer gets at most one message.
fn no_resend_after_a_lost_answer<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    let cases: Vec<(Fault, bool)> = vec![
        (Fault::ResetAfterProcessing, true),
        (Fault::Reset, false),
        (Fault::ServiceUnavailable, false),
        (Fault::BadGateway, false),
        (Fault::Truncated, true),
    ];
    for (fault, delivered) in cases {
        let name = fault.name();
        let before = (sends(&world), world.sandbox.sent_messages().len());
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::SendMessage, fault).first(1));
        let result = world.client.send_media(image(&id));
        assert!(result.is_err(), "{name}: {result:?}");
        assert_eq!(sends(&world), before.0 + 1, "{name}: resent");
        let recorded = world.sandbox.sent_messages().len();
        assert_eq!(recorded, before.1 + usize::from(delivered), "{name}");
        world.sandbox.faults().clear();
    }
    world.client.send_media(image(&id)).unwrap();

    // A timeout after the request was sent and carried out (the answer comes a byte at a
    // time): the client does not send it again.
    let client = world.client_with(|c| c.transport.request_timeout = Duration::from_millis(500));
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::SendMessage, Fault::Drip(Duration::from_millis(300))).first(1));
    let before = (sends(&world), world.sandbox.sent_messages().len());
    let started = Instant::now();
    let result = client.send_media(image(&id));
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    // One attempt's limit, not three (a generous margin for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        world.sandbox.sent_messages().len(),
        before.1 + 1,
        "carried out once"
    );
    assert_eq!(sends(&world), before.0 + 1, "and not resent");
}

/// What certainly was not carried out is sent again: a 1004 (the signature check refused `ts`)
/// is repaired once, so one message goes out after two requests.
fn a_refused_timestamp_is_corrected_and_sent_once<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default().clock_offset_ms(300_000), |_| {});
    let link = MediaSource::link("https://cdn.example/a.png");
    world
        .client
        .send_media(SendMedia::new(PHONE, CUSTOMER, MediaKind::Image, link))
        .unwrap();
    let codes: Vec<_> = world
        .sandbox
        .log()
        .for_route(Route::SendMessage)
        .iter()
        .map(|e| e.code)
        .collect();
    assert_eq!(codes, [Some(1004), Some(0)]);
    assert_eq!(world.sandbox.sent_messages().len(), 1);
}

/// Input the spec refuses never reaches the server; the client's appkey is needed unless the
/// message names one.
fn bad_messages_never_reach_the_server<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    let refused: Vec<(SendMedia, &str)> = vec![
        (
            SendMedia::new(PHONE, CUSTOMER, MediaKind::Audio, MediaSource::id(&id))
                .with_details(MessageDetails::new().caption("x")),
            "caption",
        ),
        (
            image(&id).with_details(MessageDetails::new().filename("x.png")),
            "filename",
        ),
        (
            SendMedia::new(PHONE, "+86 139", MediaKind::Image, MediaSource::id(&id)),
            "`to`",
        ),
        (
            SendMedia::new(
                PHONE,
                CUSTOMER,
                MediaKind::Image,
                MediaSource::link("file:///etc/passwd"),
            ),
            "is not usable",
        ),
        (
            SendMedia::new(
                PHONE,
                CUSTOMER,
                MediaKind::Image,
                MediaSource::link("ftp://cdn.example/a.png"),
            ),
            "http or https",
        ),
        (
            image(&id).with_details(MessageDetails::new().dr_webhook("not a url")),
            "dr_webhook",
        ),
    ];
    for (send, what) in refused {
        let err = world.client.send_media(send).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    let keyless = world.client_with(|c| c.appkey = None);
    let err = keyless.send_media(image(&id)).unwrap_err();
    assert!(err.to_string().contains("NXCLOUD_APPKEY"), "{err}");
    assert_eq!(sends(&world), 0);
    // With a per-call appkey, the keyless client sends.
    keyless
        .send_media(image(&id).with_details(MessageDetails::new().appkey(nx_sandbox::DEMO_APPKEY)))
        .unwrap();
    assert_eq!(sends(&world), 1);
}

nx_conformance::conformance!(
    AsyncDriver, BlockingDriver;
    send_by_id,
    send_by_link,
    upload_and_send,
    whatsapp_error_is_typed,
    refusal_codes_are_typed_and_not_retried,
    no_resend_after_a_lost_answer,
    a_refused_timestamp_is_corrected_and_sent_once,
    bad_messages_never_reach_the_server,
);
