//! An upload whose file changes while it is sent (grows or shrinks after its length was
//! declared), both transports, NXCloud's multipart upload and the On-Premises raw one: the call
//! fails with [`SourceChanged`] naming the file and both lengths, it is not retried, and the
//! server accepted nothing (no media stored, no upload answered with a success).
//!
//! The file changes on the upload's first progress report, so every later read sees the change
//! and nothing depends on timing.
//!
//! ```sh
//! cargo test -p nx-conformance --test source_changes
//! ```

use std::path::{Path, PathBuf};

use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Change, Driver,
    OnPremDriver, OnPremWorld, Source, World, pattern,
};
use nx_protocol::body::{FoundLength, SourceChanged};
use nx_protocol::error::Error;
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Fault, FaultRule, Route, Sandbox};

/// The file's length: many reads by either transport, so the change lands mid-way.
const LEN: usize = 1_000_000;
/// What a shrinking file is cut to: past the first read of either transport.
const CUT: u64 = 600_000;

fn file(dir: &Path) -> PathBuf {
    let path = dir.join("report.pdf");
    std::fs::write(&path, pattern(LEN)).unwrap();
    path
}

/// The error is the typed change, naming the file and both lengths.
fn assert_changed(result: Result<impl std::fmt::Debug, Error>, path: &Path, found: FoundLength) {
    let changed: SourceChanged = match result {
        Err(Error::SourceChanged(changed)) => changed,
        other => panic!("expected SourceChanged, got {other:?}"),
    };
    assert_eq!(changed.path.as_deref(), Some(path));
    assert_eq!(changed.declared, LEN as u64);
    assert_eq!(changed.found, found);
    let text = Error::SourceChanged(changed).to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("1000000 bytes were declared"), "{text}");
}

/// Nothing was stored, no upload was answered as a success, at most `attempts` were sent.
fn assert_not_accepted(sandbox: &Sandbox, route: Route, attempts: usize) {
    assert_eq!(sandbox.media_count(), 0, "the server stored the upload");
    let log = sandbox.log().for_route(route);
    assert!(
        log.iter().all(|entry| entry.status != Some(200)),
        "an upload was accepted: {log:?}"
    );
    assert!(log.len() <= attempts, "retried: {log:?}");
}

fn nxcloud<D: Driver>(change: Change, found: FoundLength) {
    let world = World::<D>::new();
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path());
    let result =
        world
            .client
            .upload_media(PHONE, "application/pdf", Source::Changing(&path, change));
    assert_changed(result, &path, found);
    assert_not_accepted(&world.sandbox, Route::UploadMedia, 1);
}

fn onprem<D: OnPremDriver>(change: Change, found: FoundLength) {
    let world = OnPremWorld::<D>::new();
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path());
    let result = world
        .client
        .upload_media("application/pdf", Source::Changing(&path, change));
    assert_changed(result, &path, found);
    assert_not_accepted(&world.sandbox, Route::OnPremUpload, 1);
}

fn nxcloud_file_that_grows<D: Driver>() {
    nxcloud::<D>(Change::Grow(10), FoundLength::Longer);
}

fn nxcloud_file_that_shrinks<D: Driver>() {
    nxcloud::<D>(Change::ShrinkTo(CUT), FoundLength::Shorter(CUT));
}

/// The first attempt is reset by the server after the file grew: the retry reads the file
/// again and finds it changed, rather than resending its first declared bytes.
fn nxcloud_retry_after_a_change_is_refused<D: Driver>() {
    let world = World::<D>::new();
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::UploadMedia, Fault::Reset).first(1));
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path());
    let result = world.client.upload_media(
        PHONE,
        "application/pdf",
        Source::Changing(&path, Change::Grow(1)),
    );
    assert_changed(result, &path, FoundLength::Longer);
    assert_not_accepted(&world.sandbox, Route::UploadMedia, 2);
}

fn onprem_file_that_grows<D: OnPremDriver>() {
    onprem::<D>(Change::Grow(10), FoundLength::Longer);
}

fn onprem_file_that_shrinks<D: OnPremDriver>() {
    onprem::<D>(Change::ShrinkTo(CUT), FoundLength::Shorter(CUT));
}

nx_conformance::conformance!(
    AsyncDriver, BlockingDriver;
    nxcloud_file_that_grows,
    nxcloud_file_that_shrinks,
    nxcloud_retry_after_a_change_is_refused,
);

mod onprem_uploads {
    use super::*;
    nx_conformance::conformance!(
        AsyncDriverOnPrem, BlockingDriverOnPrem;
        onprem_file_that_grows,
        onprem_file_that_shrinks,
    );
}
