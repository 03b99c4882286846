//! Upload progress (`UploadSource::progress`), both transports, file and in-memory sources: the
//! callback sees the bytes read so far, never more than the source's length, ending at it.
//!
//! ```sh
//! cargo test -p nx-conformance --test upload_progress
//! ```

use std::sync::{Arc, Mutex};

use nx_conformance::{pattern, test_config};
use nx_protocol::config::FromConfig;
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Sandbox, SandboxConfig};

type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

fn recorder() -> (Seen, impl Fn(u64, u64) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    (seen, move |done, total| {
        sink.lock().unwrap().push((done, total));
    })
}

fn check(what: &str, seen: &Seen, len: u64) {
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "{what}: no progress reported");
    assert!(
        seen.iter()
            .all(|&(done, total)| total == len && done <= len),
        "{what}: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "{what}: not increasing: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&(len, len)), "{what}");
}

#[test]
fn both_transports_report_upload_progress() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let data = pattern(300_000);
    let len = data.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.pdf");
    std::fs::write(&path, &data).unwrap();

    let blocking = nx_blocking::Client::from_config(test_config(&sandbox)).unwrap();
    for (what, source) in [
        ("blocking file", nx_blocking::UploadSource::path(&path)),
        (
            "blocking bytes",
            nx_blocking::UploadSource::bytes(data.clone(), "p.pdf"),
        ),
    ] {
        let (seen, report) = recorder();
        blocking
            .upload_media(PHONE, "application/pdf", source.progress(report))
            .unwrap();
        check(what, &seen, len);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = nx_async::Client::from_config(test_config(&sandbox)).unwrap();
        for (what, source) in [
            ("async file", nx_async::UploadSource::path(&path)),
            (
                "async bytes",
                nx_async::UploadSource::bytes(data.clone(), "p.pdf"),
            ),
        ] {
            let (seen, report) = recorder();
            client
                .upload_media(PHONE, "application/pdf", source.progress(report))
                .await
                .unwrap();
            check(what, &seen, len);
        }
    });
}
