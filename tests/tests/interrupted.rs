//! A download to a path that does not finish leaves nothing behind, for both transports and both
//! APIs: its temporary file (`.nx-download-XXXXXX` beside the target) is removed when the
//! download fails, when a panic unwinds through it (here: in the progress callback), and, for
//! nx-async, when the future is dropped mid-download. Each test first sees the temporary file
//! exist with bytes in it, so that "nothing left" is not the trivial "nothing ever written".
//! The mode of what is written: a new file gets the mode the umask gives, a replaced file keeps
//! its own.
//!
//! ```sh
//! cargo test -p nx-conformance --test interrupted
//! ```

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nx_conformance::{demo_login, files_in, onprem_test_config, pattern, test_config};
use nx_protocol::config::FromConfig;
use nx_protocol::download::DownloadOptions;
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Fault, FaultRule, Route, Sandbox, SandboxConfig};

/// How long a test waits for the temporary file to fill (the machine may be loaded).
const PATIENCE: Duration = Duration::from_secs(30);

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).expect("the sandbox starts")
}

/// Uploads 20 KB and makes every later download of it drip one byte per 2 ms (40 s in all).
fn slow_media(sandbox: &Sandbox) -> String {
    let client = nx_blocking::Client::from_config(test_config(sandbox)).unwrap();
    let id = client
        .upload_media(
            PHONE,
            "application/pdf",
            nx_blocking::UploadSource::bytes(pattern(20_000), "slow.pdf"),
        )
        .unwrap()
        .id;
    sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Drip(Duration::from_millis(2)),
    ));
    id
}

/// The temporary file in `dir` once it holds at least one byte.
fn temp_with_bytes(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().map_or(0, |m| m.len());
            (name.starts_with(".nx-download-") && len > 0).then(|| e.path())
        })
}

/// Options whose progress callback panics once `dir`'s temporary file holds bytes.
fn panicking_options(dir: &Path) -> DownloadOptions {
    let dir = dir.to_path_buf();
    DownloadOptions::new().progress(move |done, _| {
        if done > 0 && temp_with_bytes(&dir).is_some() {
            panic!("a writer's panic mid-download");
        }
    })
}

#[test]
fn blocking_a_panic_mid_download_removes_the_temporary_file() {
    let sandbox = sandbox();
    let id = slow_media(&sandbox);
    let client = nx_blocking::Client::from_config(test_config(&sandbox)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("f.pdf");
    let options = panicking_options(dir.path());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        client.download_media_to_path(PHONE, &id, &target, options)
    }));
    assert!(outcome.is_err(), "the panic unwound out of the download");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn blocking_a_failed_download_removes_the_temporary_file() {
    let sandbox = sandbox();
    let client = nx_blocking::Client::from_config(test_config(&sandbox)).unwrap();
    let id = client
        .upload_media(
            PHONE,
            "application/pdf",
            nx_blocking::UploadSource::bytes(pattern(20_000), "f.pdf"),
        )
        .unwrap()
        .id;
    sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, Fault::CorruptBody));
    let dir = tempfile::tempdir().unwrap();
    let digest = nx_protocol::download::Sha256Digest::of(&pattern(20_000));
    let error = client
        .download_media_to_path(
            PHONE,
            &id,
            dir.path().join("f.pdf"),
            DownloadOptions::new().sha256(digest),
        )
        .unwrap_err();
    assert!(
        matches!(error, nx_protocol::error::Error::Integrity(_)),
        "{error}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn blocking_onprem_a_panic_mid_retrieve_removes_the_temporary_file() {
    let sandbox = sandbox();
    let client =
        nx_blocking::OnPremClient::from_config(onprem_test_config(&sandbox, demo_login())).unwrap();
    let id = client
        .upload_media(
            "application/pdf",
            nx_blocking::UploadSource::bytes(pattern(20_000), "o.pdf"),
        )
        .unwrap()
        .id;
    sandbox.faults().add(FaultRule::new(
        Route::OnPremGetMedia,
        Fault::Drip(Duration::from_millis(2)),
    ));
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("o.pdf");
    let options = panicking_options(dir.path());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        client.retrieve_media_to_path(&id, &target, options)
    }));
    assert!(outcome.is_err(), "the panic unwound out of the retrieve");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (polling) until `dir` holds a temporary file with bytes.
async fn until_temp_fills(dir: &Path) -> PathBuf {
    let started = Instant::now();
    loop {
        if let Some(path) = temp_with_bytes(dir) {
            return path;
        }
        assert!(started.elapsed() < PATIENCE, "no temporary file filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn async_a_dropped_download_removes_the_temporary_file() {
    let sandbox = sandbox();
    let id = slow_media(&sandbox);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("f.pdf");
    rt.block_on(async {
        let client = nx_async::Client::from_config(test_config(&sandbox)).unwrap();
        let download = client.download_media_to_path(PHONE, &id, &target, DownloadOptions::new());
        // The download future is dropped as soon as its temporary file holds bytes.
        tokio::select! {
            result = download => panic!("the dripped download finished first: {result:?}"),
            // `select!` has dropped the download future before this runs: its file is gone.
            temp = until_temp_fills(dir.path()) => assert!(!temp.exists(), "{temp:?} is left"),
        }
    });
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn async_a_panic_mid_download_removes_the_temporary_file() {
    let sandbox = sandbox();
    let id = slow_media(&sandbox);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("f.pdf");
    let options = panicking_options(dir.path());
    let config = test_config(&sandbox);
    let joined = rt.block_on(async move {
        let client = nx_async::Client::from_config(config).unwrap();
        tokio::spawn(async move {
            client
                .download_media_to_path(PHONE, &id, &target, options)
                .await
        })
        .await
    });
    assert!(joined.unwrap_err().is_panic());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn async_onprem_a_dropped_retrieve_removes_the_temporary_file() {
    let sandbox = sandbox();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("o.pdf");
    rt.block_on(async {
        let config = onprem_test_config(&sandbox, demo_login());
        let client = nx_async::OnPremClient::from_config(config).unwrap();
        let id = client
            .upload_media(
                "application/pdf",
                nx_async::UploadSource::bytes(pattern(20_000), "o.pdf"),
            )
            .await
            .unwrap()
            .id;
        sandbox.faults().add(FaultRule::new(
            Route::OnPremGetMedia,
            Fault::Drip(Duration::from_millis(2)),
        ));
        let retrieve = client.retrieve_media_to_path(&id, &target, DownloadOptions::new());
        tokio::select! {
            result = retrieve => panic!("the dripped retrieve finished first: {result:?}"),
            // `select!` has dropped the download future before this runs: its file is gone.
            temp = until_temp_fills(dir.path()) => assert!(!temp.exists(), "{temp:?} is left"),
        }
    });
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// The permission bits of `path`.
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
#[test]
fn new_files_get_the_umask_mode_and_replaced_files_keep_theirs() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = sandbox();
    let blocking = nx_blocking::Client::from_config(test_config(&sandbox)).unwrap();
    let id = blocking
        .upload_media(
            PHONE,
            "application/pdf",
            nx_blocking::UploadSource::bytes(pattern(1000), "m.pdf"),
        )
        .unwrap()
        .id;
    let dir = tempfile::tempdir().unwrap();
    // What this process's umask gives a new file (`File::create` asks for 0o666).
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let umask_mode = mode(&reference);
    let rt = runtime();
    let async_client = rt.block_on(async { nx_async::Client::from_config(test_config(&sandbox)) });
    let async_client = async_client.unwrap();
    for transport in ["blocking", "async"] {
        let download = |path: &Path| match transport {
            "blocking" => blocking
                .download_media_to_path(PHONE, &id, path, DownloadOptions::new())
                .map(drop),
            _ => rt
                .block_on(async_client.download_media_to_path(
                    PHONE,
                    &id,
                    path,
                    DownloadOptions::new(),
                ))
                .map(drop),
        };
        let new = dir.path().join(format!("new-{transport}.pdf"));
        download(&new).unwrap();
        assert_eq!(mode(&new), umask_mode, "{transport}: a new file");
        let replaced = dir.path().join(format!("replaced-{transport}.pdf"));
        std::fs::write(&replaced, b"old").unwrap();
        for kept in [0o640, 0o604, 0o755] {
            std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(kept)).unwrap();
            download(&replaced).unwrap();
            assert_eq!(mode(&replaced), kept, "{transport}: a replaced file");
            assert_eq!(std::fs::read(&replaced).unwrap(), pattern(1000));
        }
    }
}
