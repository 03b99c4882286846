//! NXCloud WhatsApp media behaviour, written once and run against both transports.

use std::time::{Duration, Instant};

use nx_conformance::{
    AsyncDriver, BlockingDriver, Driver, FullWriter, PNG_1X1, Source, World, files_in, pattern,
};
use nx_protocol::download::{IntegrityError, Sha256Digest};
use nx_protocol::error::Error;
use nx_protocol::operation::{Operation, RequestBody, deserialize_data};
use nx_protocol::wa::MediaInfo;
use nx_protocol::{ApiCode, BizType, InvalidInput, ResponseError};
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Fault, FaultRule, Route, SandboxConfig};
use serde_json::value::RawValue;

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

/// `data` uploaded as a PDF, and its getMedia answer.
fn uploaded_pdf<D: Driver>(world: &World<D>, data: &[u8]) -> MediaInfo {
    let source = Source::Bytes(data.to_vec(), "d.pdf");
    let id = world
        .client
        .upload_media(PHONE, "application/pdf", source)
        .expect("upload")
        .id;
    world.client.get_media(PHONE, &id).expect("getMedia")
}

fn api_code(result: Result<impl std::fmt::Debug, Error>) -> i64 {
    match result {
        Err(Error::Response(ResponseError::Api { code, .. })) => code.get(),
        other => panic!("expected an NXCloud code, got {other:?}"),
    }
}

fn requests(world: &World<impl Driver>, route: Route) -> usize {
    world.sandbox.log().for_route(route).len()
}

/// Upload, look up, download with SHA-256, delete; a lookup after the delete fails with -1.
fn media_lifecycle<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    let info = world.client.get_media(PHONE, &id).unwrap();
    assert_eq!(info.mime_type(), "image/png");
    assert_eq!(info.file_name(), "one.png");
    assert!(info.url().expires_at().is_some());
    assert!(
        !format!("{info:?}").contains("Signature="),
        "the URL's query must be redacted"
    );

    let (bytes, verified) = world
        .client
        .download(&info, Some(Sha256Digest::of(PNG_1X1)))
        .unwrap();
    assert_eq!(bytes, PNG_1X1);
    assert_eq!(verified.len, PNG_1X1.len() as u64);
    assert_eq!(verified.sha256, Some(Sha256Digest::of(PNG_1X1)));

    assert!(world.client.delete_media(PHONE, &id).unwrap().success);
    assert_eq!(
        api_code(world.client.get_media(PHONE, &id)),
        ApiCode::REQUEST_FAILED.get()
    );
}

/// File names a form's quoted-string cannot carry as they are reach the sandbox's multipart
/// parser (multer, not ours) escaped, in one file part whose bytes arrive intact: no name ends
/// its header early, adds a header or loses its closing quote; UTF-8 goes as it is.
fn file_names_reach_the_server_escaped<D: Driver>() {
    let world = World::<D>::new();
    for (name, stored) in [
        (r#"say "hi".png"#, "say %22hi%22.png"),
        (
            "a\r\nContent-Type: text/html\r\n\r\nb.png",
            "a%0D%0AContent-Type: text/html%0D%0A%0D%0Ab.png",
        ),
        ("dir\\", "dir%5C"),
        ("牛小信 😀.png", "牛小信 😀.png"),
    ] {
        let id = world
            .client
            .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), name))
            .unwrap()
            .id;
        let info = world.client.get_media(PHONE, &id).unwrap();
        assert_eq!(info.file_name(), stored, "{name:?}");
        assert_eq!(world.client.download(&info, None).unwrap().0, PNG_1X1);
    }
}

/// Upload from a path; download to a path; nothing else is left in the directory.
fn path_upload_and_download<D: Driver>() {
    let world = World::<D>::new();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("doc.pdf");
    let data = pattern(300_000);
    std::fs::write(&source, &data).unwrap();
    let id = world
        .client
        .upload_media(PHONE, "application/pdf", Source::Path(&source))
        .unwrap()
        .id;
    assert_eq!(
        world.client.get_media(PHONE, &id).unwrap().file_name(),
        "doc.pdf"
    );

    let target = dir.path().join("copy.pdf");
    let verified = world
        .client
        .download_media_to_path(PHONE, &id, &target, Some(Sha256Digest::of(&data)))
        .unwrap();
    assert_eq!(verified.len, data.len() as u64);
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert_eq!(files_in(dir.path()), ["copy.pdf", "doc.pdf"]);
}

/// The inbound flow: the webhook's id and sha256 lead to the customer's bytes.
fn inbound_flow<D: Driver>() {
    let world = World::<D>::new();
    let data = pattern(20_000);
    let message = world
        .sandbox
        .receive_inbound(nx_sandbox::Inbound::new(
            "image",
            "image/jpeg",
            data.clone(),
        ))
        .unwrap();
    let hook = nx_protocol::wa::parse_inbound_webhook(message.webhook_body.as_bytes()).unwrap();
    let media = &hook.media[0];
    let (bytes, _) = world
        .client
        .download_media(PHONE, &media.id, media.sha256)
        .unwrap();
    assert_eq!(bytes, data);
    world.client.delete_media(PHONE, &media.id).unwrap();
}

/// Every NXCloud code the client can meet surfaces typed, and none is retried.
fn codes_surface_typed_and_are_not_retried<D: Driver>() {
    let world = World::<D>::new();
    let wrong_key =
        world.client_with(|c| c.credentials = nx_protocol::Credentials::new("nobody", "x"));
    assert_eq!(api_code(wrong_key.get_media(PHONE, "any")), 1005);
    let wrong_secret = world.client_with(|c| {
        c.credentials = nx_protocol::Credentials::new(nx_sandbox::DEMO_ACCESS_KEY, "wrong-secret")
    });
    assert_eq!(api_code(wrong_secret.get_media(PHONE, "any")), 1003);
    assert_eq!(
        api_code(world.client.get_media("8612345678901", "any")),
        9006
    );
    assert_eq!(api_code(world.client.get_media(PHONE, "no-such-id")), -1);
    // Operations of our own reach the codes the built-in ones validate away.
    assert_eq!(
        api_code(world.client.execute(&RawGetMedia {
            body: r#"{"business_phone":"8613800138000"}"#,
            action: "getMedia"
        })),
        9000
    );
    assert_eq!(
        api_code(world.client.execute(&RawGetMedia {
            body: r#"{"business_phone":"86x","Media-ID":"a","messaging_product":"whatsapp"}"#,
            action: "getMedia"
        })),
        9002
    );
    assert_eq!(
        api_code(world.client.execute(&RawGetMedia {
            body: "{}",
            action: "deleteMedia"
        })),
        1002
    );
    assert_eq!(
        requests(&world, Route::GetMedia),
        7,
        "each refused call was sent exactly once"
    );
}

/// A hand-made getMedia with any body and action: the generic entry point at work.
struct RawGetMedia {
    body: &'static str,
    action: &'static str,
}

impl Operation for RawGetMedia {
    type Output = serde_json::Value;
    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        self.action
    }
    fn path(&self) -> &str {
        "/api/wa/getMedia"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        Ok(RequestBody::Json(bytes::Bytes::from_static(
            self.body.as_bytes(),
        )))
    }
    fn parse_data(
        &self,
        data: Option<&RawValue>,
    ) -> Result<serde_json::Value, nx_protocol::DataError> {
        deserialize_data(data)
    }
}

/// Bad input is refused before any byte is sent.
fn bad_input_never_reaches_the_server<D: Driver>() {
    let world = World::<D>::new();
    let long_id = "a".repeat(4096);
    for (phone, id) in [
        ("+8613800138000", "id"),
        ("86 138", "id"),
        ("86abc38000", "id"),
        (PHONE, ""),
        (PHONE, "a\nb"),
        (PHONE, long_id.as_str()),
    ] {
        match world.client.get_media(phone, id) {
            Err(Error::InvalidInput(_)) => {}
            other => panic!("{phone:?} {id:?}: {other:?}"),
        }
    }
    let upload = |mime: &str, len: usize| {
        world
            .client
            .upload_media(PHONE, mime, Source::Bytes(vec![0; len], "f"))
    };
    assert!(matches!(
        upload("image/gif", 10),
        Err(Error::InvalidInput(InvalidInput::MimeType { .. }))
    ));
    assert!(matches!(
        upload("image/webp", 100 * 1024 + 1),
        Err(Error::InvalidInput(InvalidInput::TooLarge {
            kind: "sticker",
            limit: 102_400,
            actual: 102_401
        }))
    ));
    assert!(matches!(
        upload("image/png", 0),
        Err(Error::InvalidInput(InvalidInput::EmptyFile))
    ));
    assert!(
        world.sandbox.log().is_empty(),
        "nothing may be sent: {:?}",
        world.sandbox.log().entries()
    );
}

/// Ids that look like paths are sent as data, not routed.
fn hostile_ids_are_data<D: Driver>() {
    let world = World::<D>::new();
    for id in ["../users", "a/b?c#d", "%2e%2e", "\"quoted\\\""] {
        assert_eq!(api_code(world.client.get_media(PHONE, id)), -1, "{id}");
    }
}

/// 503 and 502 with HTML, resets, and stalls are retried with a fresh signature each time.
fn transient_failures_are_retried_and_resigned<D: Driver>() {
    for fault in [Fault::ServiceUnavailable, Fault::BadGateway, Fault::Reset] {
        let world = World::<D>::new();
        let id = upload_png(&world);
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::GetMedia, fault.clone()).first(2));
        std::thread::sleep(Duration::from_millis(2)); // so a re-signed ts differs
        assert_eq!(
            world.client.get_media(PHONE, &id).unwrap().mime_type(),
            "image/png",
            "{fault:?}"
        );
        let log = world.sandbox.log().for_route(Route::GetMedia);
        assert_eq!(log.len(), 3, "{fault:?}: {log:?}");
        let stamps: std::collections::BTreeSet<_> = log.iter().map(|e| e.ts.clone()).collect();
        assert_eq!(stamps.len(), 3, "every attempt carries its own ts: {log:?}");
    }
}

/// A stalled answer times out per attempt and the retry succeeds, within the limits. The
/// attempt limit (1 s) leaves the upload and the retry room on a loaded machine; the bound is
/// the stalled attempt's limit plus a generous margin.
fn stalls_time_out_and_retry<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default(), |c| {
        c.transport.request_timeout = Duration::from_secs(1)
    });
    let id = upload_png(&world);
    let stall = world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::Stall).first(1));
    let started = Instant::now();
    world.client.get_media(PHONE, &id).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    // The stalled request is still held open (it is logged only when it ends).
    assert_eq!(world.sandbox.faults().fired(stall), 1);
    assert_eq!(world.sandbox.faults().seen(stall), 2);
}

/// The retry budget is bounded: 3 attempts, then the last error.
fn retries_are_bounded<D: Driver>() {
    let world = World::<D>::new();
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::ServiceUnavailable));
    match world.client.get_media(PHONE, "x") {
        Err(Error::Response(ResponseError::Http { status, snippet })) => {
            assert_eq!(status, 503);
            assert!(snippet.as_str().contains("<html"), "{snippet}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(requests(&world, Route::GetMedia), 3);
}

/// Answers that are not the API's shape are typed errors, never panics.
fn malformed_answers_are_typed<D: Driver>() {
    for fault in [Fault::EmptyBody, Fault::InvalidJson] {
        let world = World::<D>::new();
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::GetMedia, fault.clone()));
        assert!(
            matches!(
                world.client.get_media(PHONE, "x"),
                Err(Error::Response(ResponseError::Malformed { .. }))
            ),
            "{fault:?}"
        );
    }
}

/// An oversize JSON answer is refused without being buffered, announced or not.
fn oversize_answers_are_refused<D: Driver>() {
    for content_length in [true, false] {
        let world = World::<D>::new();
        world.sandbox.faults().add(FaultRule::new(
            Route::GetMedia,
            Fault::Oversize {
                bytes: 8 * 1024 * 1024,
                content_length,
            },
        ));
        assert!(
            matches!(
                world.client.get_media(PHONE, "x"),
                Err(Error::AnswerTooLarge { limit: 1_048_576 })
            ),
            "content_length={content_length}"
        );
    }
}

/// A client clock 5 minutes off recovers after one 1004, and keeps the correction.
fn clock_skew_is_corrected_once<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default().clock_offset_ms(300_000), |_| {});
    let id = "no-such-id";
    assert_eq!(
        api_code(world.client.get_media(PHONE, id)),
        -1,
        "the call got through"
    );
    let log = world.sandbox.log().for_route(Route::GetMedia);
    assert_eq!(
        log.iter().map(|e| e.code).collect::<Vec<_>>(),
        [Some(1004), Some(-1)]
    );
    let offset = world.client.clock_offset().as_millis();
    assert!((298_000..=302_000).contains(&offset), "offset {offset}");
    // The next call starts corrected.
    assert_eq!(api_code(world.client.get_media(PHONE, id)), -1);
    assert_eq!(requests(&world, Route::GetMedia), 3);
}

/// A 1004 whose server sends a skewed Date is followed once; a second 1004 is final.
fn repeated_clock_skew_gives_up<D: Driver>() {
    let world = World::<D>::new();
    world.sandbox.faults().add(FaultRule::new(
        Route::GetMedia,
        Fault::ClockSkew { skew_ms: 120_000 },
    ));
    assert_eq!(api_code(world.client.get_media(PHONE, "x")), 1004);
    assert_eq!(requests(&world, Route::GetMedia), 2);
}

/// A corrupted download fails the SHA-256 check and leaves no file behind, whether it is
/// written at the end (200 kB) or on the way, in pieces (over 5 MiB: the writer thread of
/// nx-blocking, nx-async's batches on the blocking pool).
fn corrupt_download_leaves_no_file<D: Driver>() {
    for len in [200_000, (5 << 20) + 12_345] {
        let world = World::<D>::new();
        let data = pattern(len);
        let id = world
            .client
            .upload_media(
                PHONE,
                "application/pdf",
                Source::Bytes(data.clone(), "d.pdf"),
            )
            .unwrap()
            .id;
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::OssDownload, Fault::CorruptBody));
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("d.pdf");
        match world.client.download_media_to_path(
            PHONE,
            &id,
            &target,
            Some(Sha256Digest::of(&data)),
        ) {
            Err(Error::Integrity(IntegrityError::Sha256Mismatch { .. })) => {}
            other => panic!("{len}: {other:?}"),
        }
        assert!(
            files_in(dir.path()).is_empty(),
            "{len}: {:?}",
            files_in(dir.path())
        );
    }
}

/// A download into a caller's writer, small or large (nx-blocking hashes a large one on a
/// thread of its own from its second megabyte on, while the caller's thread writes): every byte
/// reaches the writer, in order, and the SHA-256 is checked before `Ok`; corrupt bytes fail it.
fn downloads_into_a_writer_are_verified<D: Driver>() {
    for len in [200_000, (5 << 20) + 12_345] {
        let world = World::<D>::new();
        let data = pattern(len);
        let digest = Sha256Digest::of(&data);
        let info = uploaded_pdf(&world, &data);
        let mut sink = FullWriter::new(usize::MAX);
        let verified = world
            .client
            .download_into(&info, &mut sink, Some(digest))
            .unwrap();
        assert_eq!((verified.len, verified.sha256), (len as u64, Some(digest)));
        assert!(sink.taken == data, "{len}: the bytes differ");
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::OssDownload, Fault::CorruptBody));
        match world
            .client
            .download_into(&info, &mut FullWriter::new(usize::MAX), Some(digest))
        {
            Err(Error::Integrity(IntegrityError::Sha256Mismatch { .. })) => {}
            other => panic!("{len}: {other:?}"),
        }
    }
}

/// A caller's writer that fails part-way (a full disk) fails the download with an I/O error
/// carrying the writer's, after the bytes it took; and the download is not sent again: its
/// bytes reached a writer that cannot be taken back.
fn a_writer_failing_midway_is_an_io_error_and_not_resent<D: Driver>() {
    for (len, room) in [(200_000, 100_000), ((5 << 20) + 12_345, 3 << 20)] {
        let world = World::<D>::new();
        let data = pattern(len);
        let info = uploaded_pdf(&world, &data);
        let mut sink = FullWriter::new(room);
        match world
            .client
            .download_into(&info, &mut sink, Some(Sha256Digest::of(&data)))
        {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{len}");
            }
            other => panic!("{len}: {other:?}"),
        }
        assert!(sink.taken == data[..room], "{len}: the bytes taken differ");
        assert_eq!(requests(&world, Route::OssDownload), 1, "{len}: resent");
    }
}

/// A download cut short of its Content-Length fails and leaves no file behind, small or large
/// (as above).
fn truncated_download_leaves_no_file<D: Driver>() {
    for len in [200_000, (5 << 20) + 12_345] {
        let world = World::<D>::new();
        let id = world
            .client
            .upload_media(
                PHONE,
                "application/pdf",
                Source::Bytes(pattern(len), "d.pdf"),
            )
            .unwrap()
            .id;
        world
            .sandbox
            .faults()
            .add(FaultRule::new(Route::OssDownload, Fault::Truncated));
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("d.pdf");
        match world
            .client
            .download_media_to_path(PHONE, &id, &target, None)
        {
            Err(
                Error::Integrity(IntegrityError::LengthMismatch { .. }) | Error::Transport { .. },
            ) => {}
            other => panic!("{len}: {other:?}"),
        }
        assert!(files_in(dir.path()).is_empty(), "{len}");
    }
}

/// An existing file at the target survives a failed download untouched.
fn failed_download_keeps_existing_file<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keep.png");
    std::fs::write(&target, b"precious").unwrap();
    let wrong = Sha256Digest::of(b"something else");
    assert!(
        world
            .client
            .download_media_to_path(PHONE, &id, &target, Some(wrong))
            .is_err()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert_eq!(files_in(dir.path()), ["keep.png"]);
}

/// An expired URL is refused by the storage; download_media fetches a fresh one once.
fn expired_urls_are_refreshed<D: Driver>() {
    let world = World::<D>::with(
        SandboxConfig::default().url_lifetime(Duration::from_secs(1)),
        |_| {},
    );
    let id = upload_png(&world);
    let info = world.client.get_media(PHONE, &id).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    match world.client.download(&info, None) {
        Err(Error::Response(ResponseError::Http { status, .. })) => assert_eq!(status, 403),
        other => panic!("{other:?}"),
    }
    let (bytes, _) = world.client.download_media(PHONE, &id, None).unwrap();
    assert_eq!(bytes, PNG_1X1);
}

/// A redirect from the storage is not followed: a typed error.
fn download_redirects_are_not_followed<D: Driver>() {
    let world = World::<D>::new();
    let id = upload_png(&world);
    world.sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Redirect {
            location: "file:///etc/passwd".into(),
        },
    ));
    match world.client.download_media(PHONE, &id, None) {
        Err(Error::Response(ResponseError::Http { status, .. })) => assert_eq!(status, 302),
        other => panic!("{other:?}"),
    }
}

/// A reset upload from a reopenable source is retried from the start; a one-shot reader is not.
fn uploads_retry_only_reopenable_sources<D: Driver>() {
    let world = World::<D>::new();
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::UploadMedia, Fault::Reset).first(1));
    let id = world
        .client
        .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "a.png"))
        .unwrap()
        .id;
    let (bytes, _) = world
        .client
        .download_media(PHONE, &id, Some(Sha256Digest::of(PNG_1X1)))
        .unwrap();
    assert_eq!(bytes, PNG_1X1);

    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::UploadMedia, Fault::Reset).first(1));
    let before = requests(&world, Route::UploadMedia);
    let result = world.client.upload_media(
        PHONE,
        "image/png",
        Source::Reader(PNG_1X1.to_vec(), "b.png"),
    );
    // The reset itself is reported, not "a one-shot reader cannot be sent twice".
    assert!(matches!(result, Err(Error::Transport { .. })), "{result:?}");
    assert_eq!(requests(&world, Route::UploadMedia), before + 1);
}

/// A 100 MB document goes up and comes back intact.
fn large_file_round_trip<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default(), |c| {
        c.transport.request_timeout = Duration::from_secs(60)
    });
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.pdf");
    let data = pattern(100_000_000);
    std::fs::write(&source, &data).unwrap();
    let digest = Sha256Digest::of(&data);
    drop(data);
    let id = world
        .client
        .upload_media(PHONE, "application/pdf", Source::Path(&source))
        .unwrap()
        .id;
    let target = dir.path().join("back.pdf");
    let verified = world
        .client
        .download_media_to_path(PHONE, &id, &target, Some(digest))
        .unwrap();
    assert_eq!(verified.len, 100_000_000);
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 100_000_000);
    // What is on disk (written back in stretches while it arrived) is what was sent.
    assert_eq!(Sha256Digest::of(&std::fs::read(&target).unwrap()), digest);
}

nx_conformance::conformance!(
    AsyncDriver, BlockingDriver;
    media_lifecycle,
    file_names_reach_the_server_escaped,
    path_upload_and_download,
    inbound_flow,
    codes_surface_typed_and_are_not_retried,
    bad_input_never_reaches_the_server,
    hostile_ids_are_data,
    transient_failures_are_retried_and_resigned,
    stalls_time_out_and_retry,
    retries_are_bounded,
    malformed_answers_are_typed,
    oversize_answers_are_refused,
    clock_skew_is_corrected_once,
    repeated_clock_skew_gives_up,
    corrupt_download_leaves_no_file,
    truncated_download_leaves_no_file,
    downloads_into_a_writer_are_verified,
    a_writer_failing_midway_is_an_io_error_and_not_resent,
    failed_download_keeps_existing_file,
    expired_urls_are_refreshed,
    download_redirects_are_not_followed,
    uploads_retry_only_reopenable_sources,
    large_file_round_trip,
);
