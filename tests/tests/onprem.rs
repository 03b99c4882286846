//! WhatsApp Business On-Premises media behaviour, written once and run against both transports.

use std::time::Duration;

use nx_conformance::{
    AsyncDriverOnPrem, BlockingDriverOnPrem, CallbackServer, OnPremDriver, OnPremWorld, PNG_1X1,
    Source, files_in, pattern,
};
use nx_protocol::config::OnPremLogin;
use nx_protocol::download::Sha256Digest;
use nx_protocol::error::Error;
use nx_protocol::onprem::{MediaItemStatus, MetaCode, Token};
use nx_protocol::{InvalidInput, ResponseError};
use nx_sandbox::{Fault, FaultRule, Inbound, OnPremUser, Route, SandboxConfig};

fn logins(world: &OnPremWorld<impl OnPremDriver>) -> usize {
    world.sandbox.log().for_route(Route::OnPremLogin).len()
}

fn status_of(result: Result<impl std::fmt::Debug, Error>) -> (u16, Option<i64>) {
    match result {
        Err(Error::Response(e)) => (e.status().as_u16(), e.meta_code().map(MetaCode::get)),
        other => panic!("expected an answer error, got {other:?}"),
    }
}

/// Login once, upload, retrieve (memory and path) with SHA-256, delete; the token is reused.
fn media_round_trip<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let data = pattern(150_000);
    let id = world
        .client
        .upload_media("application/pdf", Source::Bytes(data.clone(), "a.pdf"))
        .unwrap()
        .id;
    let (bytes, retrieved) = world
        .client
        .retrieve_media(&id, Some(Sha256Digest::of(&data)))
        .unwrap();
    assert_eq!(bytes, data);
    assert_eq!(
        retrieved.media.content_type.as_deref(),
        Some("application/pdf")
    );
    assert_eq!(retrieved.verified.len, data.len() as u64);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.pdf");
    world
        .client
        .retrieve_media_to_path(&id, &target, Some(Sha256Digest::of(&data)))
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), data);

    world.client.delete_media(&id).unwrap();
    match world.client.retrieve_media(&id, None) {
        Err(Error::Response(e)) => assert!(e.is_not_found(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(logins(&world), 1, "one login serves every call");
}

/// A missing id is a typed not-found (404 with no body), and no file is left behind.
fn missing_media_is_not_found<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing.bin");
    match world
        .client
        .retrieve_media_to_path("no-such-id", &target, None)
    {
        Err(Error::Response(e @ ResponseError::Http { .. })) => {
            assert!(e.is_not_found());
            assert_eq!(e.status(), 404);
        }
        other => panic!("{other:?}"),
    }
    assert!(files_in(dir.path()).is_empty());
    // Deleting it answers Meta's error shape, code 1006.
    assert_eq!(
        status_of(world.client.delete_media("no-such-id")),
        (404, Some(1006))
    );
}

/// After the token is revoked, one re-login and one retry.
fn revoked_token_relogs_in_once<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let id = world
        .client
        .upload_media("image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    world.sandbox.revoke_onprem_tokens();
    let (bytes, _) = world.client.retrieve_media(&id, None).unwrap();
    assert_eq!(bytes, PNG_1X1);
    assert_eq!(logins(&world), 2);
    let unauthorized = world
        .sandbox
        .log()
        .entries()
        .iter()
        .filter(|e| e.status == Some(401))
        .count();
    assert_eq!(unauthorized, 1);
}

/// A token close to its expiry is renewed before the call, without a 401.
fn expiring_token_is_renewed_before_use<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::with(
        SandboxConfig::default().token_lifetime(Duration::from_secs(2)),
        |c| c.token_refresh_margin = Duration::from_millis(1500),
    );
    world.client.retry_download("warm-up").ok();
    std::thread::sleep(Duration::from_millis(700));
    world.client.retry_download("again").ok();
    assert_eq!(logins(&world), 2);
    assert!(
        world
            .sandbox
            .log()
            .entries()
            .iter()
            .all(|e| e.status != Some(401))
    );
}

/// Wrong credentials: a typed 401 from the login, not retried.
fn bad_password_is_final<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let client = world.client_with(OnPremLogin::Password {
        username: nx_sandbox::DEMO_ONPREM_USER.into(),
        password: nx_protocol::AccessSecret::new("wrong"),
    });
    assert_eq!(status_of(client.login()).0, 401);
    assert_eq!(status_of(client.delete_media("x")).0, 401);
    assert_eq!(
        logins(&world),
        2,
        "one login attempt per call, never repeated"
    );
}

/// A fresh installation: the admin's first login must set a new password. A plain login is
/// refused (400, Meta 1005) and not retried; an empty new password is refused before sending;
/// `first_login` sets it and keeps the token; a later re-login (after the token is revoked)
/// uses the new password, which is now the only one that works.
fn first_login_sets_the_new_password<D: OnPremDriver>() {
    let fresh = OnPremUser::demo().must_change_password();
    let world = OnPremWorld::<D>::with(SandboxConfig::default().onprem_users([fresh]), |_| {});
    assert_eq!(status_of(world.client.login()), (400, Some(1005)));
    assert_eq!(logins(&world), 1, "a refused login is not retried");
    assert!(matches!(
        world.client.first_login(""),
        Err(Error::InvalidInput(InvalidInput::NewPassword { .. }))
    ));
    assert_eq!(logins(&world), 1, "an empty new password is not sent");

    world.client.first_login("a-long-new-password").unwrap();
    let id = world
        .client
        .upload_media("image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    assert_eq!(logins(&world), 2, "the first login's token is used");
    world.sandbox.revoke_onprem_tokens();
    let (bytes, _) = world.client.retrieve_media(&id, None).unwrap();
    assert_eq!(bytes, PNG_1X1);
    assert_eq!(logins(&world), 3, "one re-login, with the new password");

    let with_old_password = world.client_with(nx_conformance::demo_login());
    assert_eq!(status_of(with_old_password.login()).0, 401);
    let with_new_password = world.client_with(OnPremLogin::Password {
        username: nx_sandbox::DEMO_ONPREM_USER.into(),
        password: nx_protocol::AccessSecret::new("a-long-new-password"),
    });
    with_new_password.login().unwrap();
}

/// A given token that the server rejects: the 401 is final (nothing to log in with).
fn rejected_given_token_is_final<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let client = world.client_with(OnPremLogin::Token(Token::from_parts("not-a-token", None)));
    assert_eq!(status_of(client.retry_download("x")).0, 401);
    assert_eq!(logins(&world), 0);
    assert_eq!(
        world
            .sandbox
            .log()
            .for_route(Route::OnPremRetryDownload)
            .len(),
        1
    );
}

/// Ids are one path segment: nothing an id holds reaches another route.
fn hostile_ids_stay_one_segment<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    for id in ["../users", "a/b?c", "%2e%2e", "..", "#x"] {
        match world.client.retrieve_media(id, None) {
            Err(Error::Response(e)) => assert!(e.is_not_found(), "{id}: {e:?}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    let routes: Vec<Route> = world
        .sandbox
        .log()
        .entries()
        .iter()
        .map(|e| e.route)
        .collect();
    assert!(
        routes
            .iter()
            .all(|r| matches!(r, Route::OnPremGetMedia | Route::OnPremLogin)),
        "{routes:?}"
    );
    assert_eq!(
        status_of(world.client.retry_download("../../v1/users/login")),
        (404, Some(1006))
    );
}

/// Retry-download: the acknowledgement, then the notification at a test-owned callback server,
/// `downloaded` and then, once the media is gone from WhatsApp, `errors`.
fn retry_download_notifications<D: OnPremDriver>() {
    let callback = CallbackServer::start();
    let world = OnPremWorld::<D>::with(
        SandboxConfig::default().onprem_callback_url(callback.url()),
        |_| {},
    );
    let data = pattern(40_000);
    let message = world
        .sandbox
        .receive_inbound(Inbound::new("image", "image/jpeg", data.clone()))
        .unwrap();
    let id = message.media_id.clone();

    let wait = world.client.expect(&id);
    let ack = world.client.retry_download(&id).unwrap();
    assert_eq!(ack.ids, std::slice::from_ref(&id));
    let body = callback
        .next_body(Duration::from_secs(5))
        .expect("the notification arrives");
    assert_eq!(world.client.feed(&body), 1);
    match wait(Duration::from_secs(1)).unwrap() {
        MediaItemStatus::Downloaded {
            id: got,
            sha256,
            mime_type,
            ..
        } => {
            assert_eq!(got, id);
            assert_eq!(sha256, Some(Sha256Digest::of(&data)));
            assert_eq!(mime_type.as_deref(), Some("image/jpeg"));
        }
        other => panic!("{other:?}"),
    }
    let (bytes, _) = world
        .client
        .retrieve_media(&id, Some(Sha256Digest::of(&data)))
        .unwrap();
    assert_eq!(bytes, data);

    assert!(world.sandbox.expire_inbound(&id));
    let wait = world.client.expect(&id);
    world.client.retry_download(&id).unwrap();
    let body = callback
        .next_body(Duration::from_secs(5))
        .expect("the notification arrives");
    assert_eq!(world.client.feed(&body), 1);
    match wait(Duration::from_secs(1)).unwrap() {
        MediaItemStatus::Failed { errors, .. } => assert!(!errors.is_empty()),
        other => panic!("{other:?}"),
    }
}

/// Transient failures are retried on On-Premises routes too.
fn transient_failures_are_retried<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let id = world
        .client
        .upload_media("image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremGetMedia, Fault::ServiceUnavailable).first(1));
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremDeleteMedia, Fault::Reset).first(1));
    assert_eq!(world.client.retrieve_media(&id, None).unwrap().0, PNG_1X1);
    world.client.delete_media(&id).unwrap();
}

/// A corrupted retrieve fails its SHA-256 check and leaves no file.
fn corrupt_retrieve_leaves_no_file<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let data = pattern(64_000);
    let id = world
        .client
        .upload_media("application/pdf", Source::Bytes(data.clone(), "c.pdf"))
        .unwrap()
        .id;
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::OnPremGetMedia, Fault::CorruptBody));
    let dir = tempfile::tempdir().unwrap();
    let result = world.client.retrieve_media_to_path(
        &id,
        &dir.path().join("c.pdf"),
        Some(Sha256Digest::of(&data)),
    );
    assert!(matches!(result, Err(Error::Integrity(_))), "{result:?}");
    assert!(files_in(dir.path()).is_empty());
}

/// Uploads are checked against the media table before anything is sent.
/// A one-shot upload whose token the server rejects: the 401 is reported (the reader is spent,
/// so the call is not sent again after the re-login), not "cannot be sent twice".
fn one_shot_upload_after_401_reports_the_401<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    world.client.login().unwrap();
    world.sandbox.revoke_onprem_tokens();
    let result = world
        .client
        .upload_media("image/png", Source::Reader(PNG_1X1.to_vec(), "p.png"));
    assert_eq!(status_of(result).0, 401);
    assert_eq!(world.sandbox.log().for_route(Route::OnPremUpload).len(), 1);
}

fn uploads_are_checked_first<D: OnPremDriver>() {
    let world = OnPremWorld::<D>::new();
    let result = world
        .client
        .upload_media("image/gif", Source::Bytes(vec![1; 10], "g.gif"));
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    let result = world
        .client
        .upload_media("image/webp", Source::Bytes(vec![1; 200 * 1024], "s.webp"));
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert!(
        world
            .sandbox
            .log()
            .for_route(Route::OnPremUpload)
            .is_empty()
    );
}

nx_conformance::conformance!(
    AsyncDriverOnPrem, BlockingDriverOnPrem;
    media_round_trip,
    missing_media_is_not_found,
    revoked_token_relogs_in_once,
    expiring_token_is_renewed_before_use,
    bad_password_is_final,
    rejected_given_token_is_final,
    first_login_sets_the_new_password,
    hostile_ids_stay_one_segment,
    retry_download_notifications,
    transient_failures_are_retried,
    corrupt_retrieve_leaves_no_file,
    uploads_are_checked_first,
    one_shot_upload_after_401_reports_the_401,
);
