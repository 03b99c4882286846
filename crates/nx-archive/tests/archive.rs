//! The archive against the sandbox (NXCloud and On-Premises, with faults) and against a real
//! S3 API on 127.0.0.1 (moto).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use nx_archive::object_store::aws::AmazonS3ConfigKey;
use nx_archive::object_store::client::ClientConfigKey;
use nx_archive::object_store::{ObjectStore, ObjectStoreExt};
use nx_archive::{
    Api, Archive, Destination, FailureKind, Manifest, Options, Outcome, Row, Shard, Source,
    SourceKind, Status, Store, Summary,
};
use nx_protocol::download::Sha256Digest;
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Fault, FaultRule,
    Inbound, InboundMessage, Route, S3Server, Sandbox, SandboxConfig,
};

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).expect("the sandbox starts")
}

fn png(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(format!("file {i} ").bytes());
    bytes.resize(len.max(bytes.len()), (i % 251) as u8);
    bytes
}

fn receive(sandbox: &Sandbox, bytes: Vec<u8>) -> (InboundMessage, Vec<u8>) {
    let message = sandbox
        .receive_inbound(Inbound::new("image", "image/png", bytes.clone()))
        .expect("inbound media is stored");
    (message, bytes)
}

/// A document: up to 100 MB, so it can span S3 parts.
fn receive_pdf(sandbox: &Sandbox, i: usize, len: usize) -> (InboundMessage, Vec<u8>) {
    let mut bytes = format!("%PDF-1.4 file {i} ").into_bytes();
    bytes.resize(len, (i % 251) as u8);
    let message = sandbox
        .receive_inbound(Inbound::new("document", "application/pdf", bytes.clone()))
        .expect("inbound media is stored");
    (message, bytes)
}

fn nxcloud(sandbox: &Sandbox) -> Api {
    let client = nx_async::Client::builder()
        .base_url(sandbox.base_url())
        .credentials(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
        .build()
        .expect("client");
    Api::NxCloud(client)
}

fn onprem(sandbox: &Sandbox) -> Api {
    let client = nx_async::OnPremClient::builder()
        .base_url(sandbox.base_url())
        .password(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD)
        .build()
        .expect("client");
    Api::OnPrem(client)
}

async fn run(
    api: Api,
    store: &Store,
    manifest: &Path,
    kind: SourceKind,
    text: &str,
    options: Options,
) -> (Summary, Vec<Row>) {
    let source = Source::parse(kind, text);
    let (opened, previous) = Manifest::open(manifest).expect("manifest opens");
    let archive =
        Archive::with_options(api, store.clone(), opened, previous, options, Arc::new(()));
    let summary = archive.run(source.items).await.expect("the run ends");
    (summary, rows(manifest))
}

fn rows(manifest: &Path) -> Vec<Row> {
    std::fs::read_to_string(manifest)
        .expect("manifest")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a row"))
        .collect()
}

fn row<'a>(rows: &'a [Row], id: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"))
}

fn count(sandbox: &Sandbox, route: Route) -> usize {
    sandbox.log().for_route(route).len()
}

fn local(dir: &Path) -> Store {
    Store::open(&Destination::Local(dir.to_owned())).expect("store")
}

/// A webhook body with its SHA-256 replaced: the download can never match it.
fn tampered(message: &InboundMessage) -> String {
    let wrong = Sha256Digest::of(b"not the file").to_string();
    message
        .webhook_body
        .replace(&message.sha256.to_string(), &wrong)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxcloud_archive_verifies_reruns_nothing_stored_and_deletes_only_verified() {
    let sandbox = sandbox();
    let files: Vec<(InboundMessage, Vec<u8>)> = (0..6)
        .map(|i| receive(&sandbox, png(i, 3000 + i * 100)))
        .collect();
    let (bad, _) = receive(&sandbox, png(99, 500));
    let mut lines: Vec<String> = files.iter().map(|(m, _)| m.webhook_body.clone()).collect();
    lines.push(tampered(&bad));
    lines.push(files[0].0.webhook_body.clone()); // a duplicate webhook
    lines.push(
        r#"{"messages":[{"type":"text","text":{"body":"hi"}}],"merchant_phone":"8613800138000"}"#
            .into(),
    );
    let text = lines.join("\n");
    // One download is corrupted in flight: that item is retried and stored.
    sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, Fault::CorruptBody).on_nth([2]));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("archive");
    let store = local(&out);
    let manifest = out.join("manifest.jsonl");
    let options = Options::default().concurrency(3);
    let (summary, manifest_rows) = run(
        nxcloud(&sandbox),
        &store,
        &manifest,
        SourceKind::NxCloudWebhooks,
        &text,
        options.clone(),
    )
    .await;
    assert_eq!(
        (
            summary.total,
            summary.stored,
            summary.failed,
            summary.skipped
        ),
        (7, 6, 1, 0),
        "{summary:?}"
    );
    assert_eq!(
        summary.bytes,
        files.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    assert_eq!(manifest_rows.len(), 7, "one row per id: {manifest_rows:?}");
    for (message, bytes) in &files {
        let r = row(&manifest_rows, &message.media_id);
        assert_eq!(r.status, Status::Stored);
        let key = format!("{}.png", message.sha256);
        assert_eq!(r.key.as_deref(), Some(key.as_str()));
        assert_eq!(r.size, Some(bytes.len() as u64));
        assert_eq!(r.mime_type.as_deref(), Some("image/png"));
        assert_eq!(&std::fs::read(out.join(&key)).unwrap(), bytes);
    }
    assert_eq!(
        manifest_rows.iter().map(|r| r.attempts).sum::<u32>(),
        6 + 1 + 3,
        "the corrupted download was tried twice, the tampered one three times"
    );
    let failed = row(&manifest_rows, &bad.media_id);
    assert_eq!(failed.status, Status::Failed);
    let reason = failed.reason.as_ref().unwrap();
    assert_eq!(reason.kind, FailureKind::Integrity);
    assert!(
        reason.message.contains("SHA-256 mismatch"),
        "{}",
        reason.message
    );
    // Nothing but the verified objects and the manifest is left in the directory.
    let names: BTreeSet<String> = walk(&out);
    let mut expected: BTreeSet<String> = files
        .iter()
        .map(|(m, _)| format!("{}.png", m.sha256))
        .collect();
    expected.insert("manifest.jsonl".into());
    assert_eq!(names, expected);

    // A rerun fetches nothing already stored, and tries the failed item again.
    let (downloads, lookups) = (
        count(&sandbox, Route::OssDownload),
        count(&sandbox, Route::GetMedia),
    );
    let (summary, manifest_rows) = run(
        nxcloud(&sandbox),
        &store,
        &manifest,
        SourceKind::NxCloudWebhooks,
        &text,
        options.clone(),
    )
    .await;
    assert_eq!((summary.skipped, summary.stored, summary.failed), (6, 0, 1));
    assert_eq!(count(&sandbox, Route::OssDownload) - downloads, 3);
    assert_eq!(count(&sandbox, Route::GetMedia) - lookups, 3);
    assert_eq!(row(&manifest_rows, &bad.media_id).attempts, 6);

    // --delete-after deletes the stored items, and only those.
    let client = nx_async::Client::builder()
        .base_url(sandbox.base_url())
        .credentials(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
        .build()
        .unwrap();
    let (summary, manifest_rows) = run(
        nxcloud(&sandbox),
        &store,
        &manifest,
        SourceKind::NxCloudWebhooks,
        &text,
        options.delete_after(true),
    )
    .await;
    assert_eq!((summary.deleted, summary.failed, summary.stored), (6, 1, 0));
    assert_eq!(count(&sandbox, Route::DeleteMedia), 6);
    for (message, _) in &files {
        assert_eq!(
            row(&manifest_rows, &message.media_id).status,
            Status::Deleted
        );
        assert!(
            client
                .get_media(&message.merchant_phone, &message.media_id)
                .await
                .is_err()
        );
    }
    assert!(
        client
            .get_media(&bad.merchant_phone, &bad.media_id)
            .await
            .is_ok()
    );
}

/// Files under `dir`, relative, `/`-separated.
fn walk(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_partition_one_source_over_one_destination() {
    let sandbox = sandbox();
    let files: Vec<InboundMessage> = (0..12).map(|i| receive(&sandbox, png(i, 200)).0).collect();
    let text: String = files
        .iter()
        .map(|m| m.webhook_body.clone() + "\n")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir.path().join("shared"));
    let mut seen = BTreeSet::new();
    for i in 1..=3 {
        let shard = Shard::new(i, 3).unwrap();
        let manifest = dir.path().join(format!("manifest-{i}.jsonl"));
        let (summary, manifest_rows) = run(
            nxcloud(&sandbox),
            &store,
            &manifest,
            SourceKind::NxCloudWebhooks,
            &text,
            Options::default().shard(Some(shard)),
        )
        .await;
        assert_eq!(summary.total + summary.other_shards, 12);
        assert_eq!(summary.stored, summary.total);
        for r in &manifest_rows {
            assert!(shard.contains(&r.id));
            assert!(seen.insert(r.id.clone()), "{} is in two shards", r.id);
        }
    }
    let all: BTreeSet<String> = files.iter().map(|m| m.media_id.clone()).collect();
    assert_eq!(seen, all);
    assert_eq!(count(&sandbox, Route::OssDownload), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_are_stored_once() {
    let sandbox = sandbox();
    let bytes = png(7, 1000);
    let (first, _) = receive(&sandbox, bytes.clone());
    let (second, _) = receive(&sandbox, bytes.clone());
    assert_ne!(first.media_id, second.media_id);
    let text = format!("{}\n{}\n", first.webhook_body, second.webhook_body);
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path());
    let (summary, manifest_rows) = run(
        nxcloud(&sandbox),
        &store,
        &dir.path().join("manifest.jsonl"),
        SourceKind::NxCloudWebhooks,
        &text,
        Options::default().concurrency(1),
    )
    .await;
    assert_eq!(
        (summary.stored, summary.already_stored),
        (1, 1),
        "{summary:?}"
    );
    // The second id's content was found at its key before getMedia was even asked.
    assert_eq!(count(&sandbox, Route::GetMedia), 1);
    assert_eq!(count(&sandbox, Route::OssDownload), 1);
    assert_eq!(manifest_rows[0].key, manifest_rows[1].key);
    assert_eq!(walk(dir.path()).len(), 2, "one object and the manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onprem_export_by_ids_and_notifications_then_delete() {
    let sandbox = sandbox();
    let files: Vec<(InboundMessage, Vec<u8>)> =
        (0..3).map(|i| receive(&sandbox, png(i, 700))).collect();
    let (noted, noted_bytes) = receive(&sandbox, png(50, 900));
    let notification = format!(
        r#"{{"media_items":[{{"image":{{"id":"{}","mime_type":"image/png","sha256":"{}","status":"downloaded"}},"type":"image"}}]}}"#,
        noted.media_id, noted.sha256
    );
    let mut text: String = files
        .iter()
        .map(|(m, _)| format!("{}\n", m.media_id))
        .collect();
    text.push_str(&notification);
    text.push_str("\nno-such-media-id\n");
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path());
    let manifest = dir.path().join("manifest.jsonl");
    let (summary, manifest_rows) = run(
        onprem(&sandbox),
        &store,
        &manifest,
        SourceKind::OnPrem,
        &text,
        Options::default(),
    )
    .await;
    assert_eq!((summary.stored, summary.failed), (4, 1), "{summary:?}");
    for (message, bytes) in files.iter().chain(
        [(&noted, &noted_bytes)]
            .map(|(m, b)| (m.clone(), b.clone()))
            .iter(),
    ) {
        let r = row(&manifest_rows, &message.media_id);
        // Ids alone: the digest was computed, the type taken from the answer.
        assert_eq!(
            r.sha256.as_deref(),
            Some(message.sha256.to_string().as_str())
        );
        assert_eq!(
            &std::fs::read(dir.path().join(r.key.as_ref().unwrap())).unwrap(),
            bytes
        );
    }
    let missing = row(&manifest_rows, "no-such-media-id");
    let reason = missing.reason.as_ref().unwrap();
    assert_eq!(
        (reason.kind, reason.http_status, missing.attempts),
        (FailureKind::NotFound, Some(404), 1)
    );
    assert!(!dir.path().join(".staging").exists() || walk(&dir.path().join(".staging")).is_empty());

    let (summary, _) = run(
        onprem(&sandbox),
        &store,
        &manifest,
        SourceKind::OnPrem,
        &text,
        Options::default().delete_after(true),
    )
    .await;
    assert_eq!((summary.deleted, summary.failed), (4, 1));
    let deletes: BTreeSet<String> = sandbox
        .log()
        .for_route(Route::OnPremDeleteMedia)
        .into_iter()
        .map(|e| e.path.trim_start_matches("/v1/media/").to_owned())
        .collect();
    let mut expected: BTreeSet<String> = files.iter().map(|(m, _)| m.media_id.clone()).collect();
    expected.insert(noted.media_id.clone());
    assert_eq!(deletes, expected, "only stored, verified items are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_to_s3_with_multipart_uploads_completed_only_when_verified() {
    let Some(s3) = S3Server::start_for_test("archives_to_s3") else {
        return;
    };
    s3.create_bucket("archive").unwrap();
    let sandbox = sandbox();
    // Over one part (8 MiB): a multipart upload.
    let (big_message, big) = receive_pdf(&sandbox, 1, nx_archive::PART_SIZE * 2 + 123_456);
    let (small, small_bytes) = receive(&sandbox, png(2, 5000));
    let (bad_big, _) = receive_pdf(&sandbox, 3, nx_archive::PART_SIZE + 10);
    let text = format!(
        "{}\n{}\n{}\n",
        big_message.webhook_body,
        small.webhook_body,
        tampered(&bad_big)
    );
    let settings = [
        (
            AmazonS3ConfigKey::AccessKeyId,
            nx_sandbox::S3_ACCESS_KEY_ID.to_owned(),
        ),
        (
            AmazonS3ConfigKey::SecretAccessKey,
            nx_sandbox::S3_SECRET_ACCESS_KEY.to_owned(),
        ),
        (AmazonS3ConfigKey::Region, nx_sandbox::S3_REGION.to_owned()),
        (AmazonS3ConfigKey::Endpoint, s3.endpoint()),
        (
            AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
            "true".to_owned(),
        ),
    ];
    let destination: Destination = "s3://archive/media/2026".parse().unwrap();
    let store = Store::open_with(&destination, settings.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.jsonl");
    let (summary, manifest_rows) = run(
        nxcloud(&sandbox),
        &store,
        &manifest,
        SourceKind::NxCloudWebhooks,
        &text,
        Options::default().max_attempts(1),
    )
    .await;
    assert_eq!((summary.stored, summary.failed), (2, 1), "{summary:?}");
    let objects = store.object_store();
    let big_key = format!("media/2026/{}.pdf", big_message.sha256);
    assert_eq!(
        row(&manifest_rows, &big_message.media_id).key.as_deref(),
        Some(big_key.as_str())
    );
    let got = objects
        .get(&big_key.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == big, "the multipart object is the file");
    let small_key = format!("media/2026/{}.png", small.sha256);
    let got = objects
        .get(&small_key.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), small_bytes.as_slice());
    assert_eq!(
        list(objects.as_ref()).await,
        BTreeSet::from([big_key, small_key.clone()])
    );

    // On-Premises ids carry no digest: staged, then renamed to the content address.
    let (summary, _) = run(
        onprem(&sandbox),
        &store,
        &dir.path().join("onprem.jsonl"),
        SourceKind::OnPrem,
        &format!("{}\n", small.media_id),
        Options::default(),
    )
    .await;
    assert_eq!(
        (summary.stored + summary.already_stored, summary.failed),
        (1, 0)
    );
    assert_eq!(
        list(objects.as_ref()).await.len(),
        2,
        "no staging object is left"
    );
}

async fn list(store: &dyn ObjectStore) -> BTreeSet<String> {
    use futures_util::TryStreamExt;
    store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[test]
fn outcomes_serialize_in_snake_case() {
    assert_eq!(
        serde_json::to_string(&Outcome::AlreadyStored).unwrap(),
        r#""already_stored""#
    );
}
