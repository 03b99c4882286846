//! nx-blocking's On-Premises client against the in-process sandbox: login and token reuse,
//! upload/retrieve/delete with SHA-256, 404 on a missing id, re-login after the tokens are
//! revoked, and the retry-download acknowledgement.

use std::time::Duration;

use nx_blocking::{
    DownloadOptions, Error, IntegrityError, OnPremClient, RetryPolicy, Sha256Digest, UploadSource,
};
use nx_protocol::onprem::MetaCode;
use nx_sandbox::{
    DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Fault, FaultRule, Inbound, Route, Sandbox,
    SandboxConfig,
};

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).unwrap()
}

fn client(sandbox: &Sandbox) -> OnPremClient {
    OnPremClient::builder()
        .base_url(sandbox.base_url())
        .password(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD)
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn logins(sandbox: &Sandbox) -> usize {
    sandbox.log().for_route(Route::OnPremLogin).len()
}

/// Some bytes that are not all the same, larger than one 64 KiB chunk.
fn photo() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn login_answers_a_token_that_later_calls_reuse() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    assert_eq!(client.config().base_url.as_str(), sandbox.base_url());
    let token = client.login().unwrap();
    assert!(!token.expose().is_empty());
    assert!(token.expires_after().is_some());
    assert_eq!(logins(&sandbox), 1);

    // The token is reused: no login for the next calls.
    let id = client
        .upload_media("image/jpeg", UploadSource::bytes(photo(), "p.jpg"))
        .unwrap()
        .id;
    client.delete_media(&id).unwrap();
    assert_eq!(logins(&sandbox), 1);

    // An explicit login replaces the token.
    let again = client.login().unwrap();
    assert_ne!(again, token);
    assert_eq!(logins(&sandbox), 2);
}

#[test]
fn a_bad_password_is_a_401_without_a_second_login() {
    let sandbox = sandbox();
    let client = OnPremClient::builder()
        .base_url(sandbox.base_url())
        .password(DEMO_ONPREM_USER, "wrong")
        .build()
        .unwrap();
    let err = client.retry_download("whatever").unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    assert_eq!(logins(&sandbox), 1);
}

#[test]
fn upload_retrieve_delete_round_trip_with_sha256() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let bytes = photo();
    let digest = Sha256Digest::of(&bytes);
    let uploaded = client
        .upload_media("image/jpeg", UploadSource::bytes(bytes.clone(), "p.jpg"))
        .unwrap();
    assert!(!uploaded.id.is_empty());

    // Into a writer, checked against the digest, with progress.
    let mut out = Vec::new();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = seen.clone();
    let retrieved = client
        .retrieve_media(
            &uploaded.id,
            &mut out,
            DownloadOptions::new()
                .sha256(digest)
                .progress(move |done, total| progress.lock().unwrap().push((done, total))),
        )
        .unwrap();
    assert_eq!(out, bytes);
    assert_eq!(retrieved.verified.len, bytes.len() as u64);
    assert_eq!(retrieved.verified.sha256, Some(digest));
    assert_eq!(retrieved.media.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(retrieved.media.content_length, Some(bytes.len() as u64));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.last(),
        Some(&(bytes.len() as u64, Some(bytes.len() as u64)))
    );

    // Into a path: the file appears whole, nothing else is left beside it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.jpg");
    client
        .retrieve_media_to_path(&uploaded.id, &path, DownloadOptions::new().sha256(digest))
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A streamed upload from a path.
    let source = dir.path().join("source.jpg");
    std::fs::write(&source, &bytes).unwrap();
    let from_path = client
        .upload_media("image/jpeg", UploadSource::path(&source))
        .unwrap();
    let mut again = Vec::new();
    client
        .retrieve_media(&from_path.id, &mut again, DownloadOptions::new())
        .unwrap();
    assert_eq!(again, bytes);

    client.delete_media(&uploaded.id).unwrap();
    client.delete_media(&from_path.id).unwrap();
    let err = client
        .retrieve_media(&uploaded.id, &mut Vec::new(), DownloadOptions::new())
        .unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
    assert_eq!(logins(&sandbox), 1);
}

fn is_not_found(err: &Error) -> bool {
    matches!(err, Error::Response(e) if e.is_not_found())
}

#[test]
fn a_missing_id_is_not_found_and_leaves_no_file() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let mut out = Vec::new();
    let err = client
        .retrieve_media("no-such-media", &mut out, DownloadOptions::new())
        .unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(out.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.jpg");
    let err = client
        .retrieve_media_to_path("no-such-media", &path, DownloadOptions::new())
        .unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // Delete answers 404 with Meta's code 1006.
    let err = client.delete_media("no-such-media").unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
    let Error::Response(response) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(response.meta_code(), Some(MetaCode::NOT_FOUND));
    // A 404 is not retried.
    assert_eq!(
        sandbox.log().for_route(Route::OnPremDeleteMedia).len(),
        1,
        "{:?}",
        sandbox.log().entries()
    );
}

#[test]
fn a_wrong_digest_leaves_nothing_at_the_path() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let id = client
        .upload_media("image/jpeg", UploadSource::bytes(photo(), "p.jpg"))
        .unwrap()
        .id;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jpg");
    let err = client
        .retrieve_media_to_path(
            &id,
            &path,
            DownloadOptions::new().sha256(Sha256Digest::of(b"something else")),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Integrity(IntegrityError::Sha256Mismatch { .. })),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_truncated_retrieve_is_retried_into_a_path_but_not_into_a_writer() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let bytes = photo();
    let id = client
        .upload_media("image/jpeg", UploadSource::bytes(bytes.clone(), "p.jpg"))
        .unwrap()
        .id;

    // Into a path: a fresh temporary file per attempt, the second attempt succeeds.
    let cut = sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremGetMedia, Fault::Truncated).first(1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.jpg");
    client
        .retrieve_media_to_path(&id, &path, DownloadOptions::new())
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(sandbox.faults().fired(cut), 1);
    sandbox.faults().remove(cut);

    // Into a writer: bytes reached it, so the failure is final (no second GET).
    let cut = sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremGetMedia, Fault::Truncated).first(1));
    let before = sandbox.log().for_route(Route::OnPremGetMedia).len();
    let mut out = Vec::new();
    let err = client
        .retrieve_media(&id, &mut out, DownloadOptions::new())
        .unwrap_err();
    assert!(!out.is_empty() && out.len() < bytes.len(), "{err:?}");
    assert_eq!(sandbox.faults().fired(cut), 1);
    // The cut request is logged when it ends; give it a moment.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        sandbox.log().for_route(Route::OnPremGetMedia).len(),
        before + 1
    );
}

#[test]
fn a_revoked_token_is_replaced_by_one_login_and_the_call_retried() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let id = client
        .upload_media("image/jpeg", UploadSource::bytes(photo(), "p.jpg"))
        .unwrap()
        .id;
    let first = client.login().unwrap();
    let logins_before = logins(&sandbox);

    sandbox.revoke_onprem_tokens();
    let mut out = Vec::new();
    client
        .retrieve_media(&id, &mut out, DownloadOptions::new())
        .unwrap();
    assert_eq!(out, photo());
    assert_eq!(logins(&sandbox), logins_before + 1);

    sandbox.revoke_onprem_tokens();
    client.delete_media(&id).unwrap();
    assert_eq!(logins(&sandbox), logins_before + 2);
    assert_ne!(client.login().unwrap(), first);
}

#[test]
fn concurrent_calls_log_in_once_and_relogin_once() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let run_all = |client: &OnPremClient| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| scope.spawn(|| client.retry_download("no-such-media")))
                .collect();
            for handle in handles {
                let err = handle.join().unwrap().unwrap_err();
                assert!(is_not_found(&err), "{err:?}");
            }
        });
    };
    run_all(&client);
    assert_eq!(logins(&sandbox), 1);

    sandbox.revoke_onprem_tokens();
    run_all(&client);
    assert_eq!(logins(&sandbox), 2, "{:#?}", sandbox.log().entries());
}

#[test]
fn a_given_token_cannot_log_in_again_so_a_401_is_final() {
    let sandbox = sandbox();
    let token = client(&sandbox).login().unwrap();
    let client = OnPremClient::builder()
        .base_url(sandbox.base_url())
        .token(token.expose())
        .build()
        .unwrap();
    assert_eq!(client.login().unwrap().expose(), token.expose());
    let id = client
        .upload_media("image/jpeg", UploadSource::bytes(photo(), "p.jpg"))
        .unwrap()
        .id;
    let logins_before = logins(&sandbox);

    sandbox.revoke_onprem_tokens();
    let err = client.delete_media(&id).unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    let err = client
        .retrieve_media(&id, &mut Vec::new(), DownloadOptions::new())
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    assert_eq!(logins(&sandbox), logins_before);
    assert_eq!(sandbox.log().for_route(Route::OnPremDeleteMedia).len(), 1);
}

#[test]
fn retry_download_is_acknowledged_for_inbound_media() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let sent = sandbox
        .receive_inbound(Inbound::new("image", "image/jpeg", photo()))
        .unwrap();
    let ack = client.retry_download(&sent.media_id).unwrap();
    assert_eq!(ack.ids, vec![sent.media_id.clone()]);

    // The inbound media is retrievable through the On-Premises routes too.
    let mut out = Vec::new();
    client
        .retrieve_media(
            &sent.media_id,
            &mut out,
            DownloadOptions::new().sha256(Sha256Digest::of(&photo())),
        )
        .unwrap();
    assert_eq!(out, photo());

    // An id the installation never heard of: 404, code 1006, at once.
    let err = client.retry_download("no-such-media").unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
}

#[test]
fn a_one_shot_reader_upload_is_not_resent_after_a_reset() {
    let sandbox = sandbox();
    let client = client(&sandbox);
    let bytes = photo();
    let reset = sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremUpload, Fault::ResetAfterProcessing).first(1));
    let err = client
        .upload_media(
            "image/jpeg",
            UploadSource::reader(
                Box::new(std::io::Cursor::new(bytes.clone())),
                bytes.len() as u64,
                "p",
            ),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. } | Error::Connect { .. }),
        "{err:?}"
    );
    assert_eq!(sandbox.faults().fired(reset), 1);
    assert_eq!(sandbox.faults().seen(reset), 1);

    // Bytes can be resent: the retry succeeds.
    let reset = sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremUpload, Fault::ServiceUnavailable).first(1));
    client
        .upload_media("image/jpeg", UploadSource::bytes(bytes, "p.jpg"))
        .unwrap();
    assert_eq!(sandbox.faults().seen(reset), 2);
}
