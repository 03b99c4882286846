//! `nxcloud media archive` and `nxcloud onprem media export`, the built binary against an
//! in-process sandbox (and a moto S3 server) on 127.0.0.1: exit codes, `--json` lines, reruns,
//! a run killed midway that resumes, `--delete-after`.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use nx_protocol::download::Sha256Digest;
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Fault, FaultRule,
    Inbound, InboundMessage, Route, S3Server, Sandbox,
};
use serde_json::Value;

mod common;
use common::*;

/// The command against `sandbox`, with no settings from the test's environment.
fn against(sandbox: &Sandbox) -> Command {
    let mut cmd = Command::from_std(process(sandbox));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// [`against`] as a plain process (to be killed).
fn process(sandbox: &Sandbox) -> std::process::Command {
    let mut cmd = common::process();
    cmd.args(["--base-url", sandbox.base_url()])
        .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
        .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET);
    cmd
}

fn receive(sandbox: &Sandbox, i: usize) -> InboundMessage {
    let mut bytes = format!("\x7fPNG\r\n\x1a\n file {i} ").into_bytes();
    bytes[0] = 0x89;
    bytes.resize(2000 + i, i as u8);
    sandbox
        .receive_inbound(Inbound::new("image", "image/png", bytes))
        .expect("inbound media is stored")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The manifest's whole rows (a torn last line is left out).
fn manifest_rows(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
    json_lines(whole)
}

fn stored_ids(path: &Path) -> BTreeSet<String> {
    manifest_rows(path)
        .iter()
        .filter(|r| r["status"] == "stored")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every visible object in `dir` is named by its bytes' SHA-256.
fn assert_objects_verified(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "manifest.jsonl" || name.contains('#') || path.is_dir() {
            continue;
        }
        let digest = Sha256Digest::of(&std::fs::read(&path).unwrap()).to_string();
        assert_eq!(name, format!("{digest}.png"));
        n += 1;
    }
    n
}

#[test]
fn media_archive_reports_each_item_exits_1_on_failure_and_reruns_to_0() {
    let sandbox = sandbox();
    let good: Vec<InboundMessage> = (0..4).map(|i| receive(&sandbox, i)).collect();
    let bad = receive(&sandbox, 9);
    let wrong = Sha256Digest::of(b"something else").to_string();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    let mut text: String = good.iter().map(|m| m.webhook_body.clone() + "\n").collect();
    let good_text = text.clone();
    text.push_str(&bad.webhook_body.replace(&bad.sha256.to_string(), &wrong));
    text.push('\n');
    std::fs::write(&hooks, &text).unwrap();
    let out = dir.path().join("out");

    let first = expect(
        against(&sandbox)
            .args(["media", "archive", "--json", "--concurrency", "2", "--from"])
            .arg(&hooks)
            .arg("--to")
            .arg(&out),
        1,
    );
    let lines = json_lines(&first.stdout);
    assert_eq!(lines.len(), 6, "5 items and the summary: {}", first.stdout);
    let outcome = |id: &str| {
        lines
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}"))
    };
    for m in &good {
        let line = outcome(&m.media_id);
        assert_eq!(line["outcome"], "stored");
        assert_eq!(line["sha256"], m.sha256.to_string());
        assert_eq!(line["key"], format!("{}.png", m.sha256));
    }
    let failed = outcome(&bad.media_id);
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["reason"]["kind"], "integrity");
    let summary = &lines[5]["summary"];
    assert_eq!(
        (summary["stored"].as_u64(), summary["failed"].as_u64()),
        (Some(4), Some(1))
    );
    let error: Value = serde_json::from_str(first.stderr.trim()).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("1 of 5 items failed; the manifest ("),
        "{error}"
    );
    assert_eq!(assert_objects_verified(&out), 4);
    assert_eq!(manifest_rows(&out.join("manifest.jsonl")).len(), 5);

    // From stdin, without the bad line: nothing is fetched again, exit 0.
    let downloads = sandbox.log().for_route(Route::OssDownload).len();
    let second = expect(
        against(&sandbox)
            .args(["media", "archive", "--from", "-", "--to"])
            .arg(&out)
            .write_stdin(good_text),
        0,
    );
    assert_eq!(sandbox.log().for_route(Route::OssDownload).len(), downloads);
    assert!(
        second
            .stdout
            .starts_with("stored 0, skipped 4 (already stored), failed 0; 4 items"),
        "{}",
        second.stdout
    );
}

/// Starts `media archive` of `hooks` into `out` as a plain process (stderr piped), and waits
/// until its manifest has `stored` rows saying stored, while it still runs.
fn start_archive(
    sandbox: &Sandbox,
    hooks: &Path,
    out: &Path,
    concurrency: u16,
    stored: usize,
) -> std::process::Child {
    let mut child = process(sandbox)
        .args([
            "media",
            "archive",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .arg("--from")
        .arg(hooks)
        .arg("--to")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while stored_ids(&out.join("manifest.jsonl")).len() < stored {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "it ended too soon");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_killed_archive_resumes_where_it_stopped() {
    let sandbox = sandbox();
    let files: Vec<InboundMessage> = (0..16).map(|i| receive(&sandbox, i)).collect();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    let text: String = files
        .iter()
        .map(|m| m.webhook_body.clone() + "\n")
        .collect();
    std::fs::write(&hooks, &text).unwrap();
    let out = dir.path().join("out");
    let manifest = out.join("manifest.jsonl");
    // Each download takes 250 ms: with 2 in flight, the run needs about 2 s.
    let slow = sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Latency(Duration::from_millis(250)),
    ));
    let mut child = start_archive(&sandbox, &hooks, &out, 2, 3);
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let stored = stored_ids(&manifest);
    assert!((3..16).contains(&stored.len()), "{} stored", stored.len());
    // An object committed just before the kill, whose row was not yet written, is visible
    // (it was verified first) and found at its content address by the rerun.
    let visible = assert_objects_verified(&out);
    assert!(visible >= stored.len());

    sandbox.faults().remove(slow);
    // Requests of the killed process still in the sandbox's hands are logged by then.
    std::thread::sleep(Duration::from_secs(1));
    let downloads = sandbox.log().for_route(Route::OssDownload).len();
    expect(
        against(&sandbox)
            .args(["media", "archive", "--from"])
            .arg(&hooks)
            .arg("--to")
            .arg(&out),
        0,
    );
    assert_eq!(
        sandbox.log().for_route(Route::OssDownload).len() - downloads,
        16 - visible,
        "the rerun fetched only what the killed run had not stored"
    );
    assert_eq!(stored_ids(&manifest).len(), 16);
    assert_eq!(
        manifest_rows(&manifest).len(),
        16,
        "compacted: one row per id"
    );
    assert_eq!(assert_objects_verified(&out), 16);
}

#[test]
fn ctrl_c_stops_with_a_resume_hint_and_nothing_unverified_visible() {
    let sandbox = sandbox();
    let files: Vec<InboundMessage> = (0..8).map(|i| receive(&sandbox, i)).collect();
    let text: String = files
        .iter()
        .map(|m| m.webhook_body.clone() + "\n")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    std::fs::write(&hooks, &text).unwrap();
    let out = dir.path().join("out");
    let manifest = out.join("manifest.jsonl");
    let slow = sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Latency(Duration::from_millis(300)),
    ));
    let child = start_archive(&sandbox, &hooks, &out, 1, 1);
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.signal(), Some(2), "{stderr}");
    assert!(stderr.contains("error: interrupted after "), "{stderr}");
    assert!(
        stderr.contains("hint: run the same command again to resume"),
        "{stderr}"
    );
    let stored = stored_ids(&manifest).len();
    assert!(stored < 8, "it stopped early");
    // A clean stop: every visible object is verified and has its row (an item verified when
    // the signal came was committed and recorded first), and no temporary file is left.
    assert_eq!(assert_objects_verified(&out), stored);
    let names = nx_conformance::files_in(&out);
    assert!(names.iter().all(|n| !n.contains('#')), "{names:?}");
    sandbox.faults().remove(slow);
    expect(
        against(&sandbox)
            .args(["media", "archive", "--from"])
            .arg(&hooks)
            .arg("--to")
            .arg(&out),
        0,
    );
    assert_eq!(assert_objects_verified(&out), 8);
}

fn onprem(sandbox: &Sandbox) -> Command {
    let mut cmd = against(sandbox);
    cmd.args([
        "onprem",
        "--url",
        sandbox.base_url(),
        "--username",
        DEMO_ONPREM_USER,
        "--password",
        DEMO_ONPREM_PASSWORD,
    ]);
    cmd
}

#[test]
fn onprem_export_from_stdin_deletes_only_what_it_stored() {
    let sandbox = sandbox();
    let files: Vec<InboundMessage> = (0..3).map(|i| receive(&sandbox, i)).collect();
    let mut ids: String = files.iter().map(|m| m.media_id.clone() + "\n").collect();
    ids.push_str("missing-id\n");
    let dir = tempfile::tempdir().unwrap();
    let run = expect(
        onprem(&sandbox)
            .args(["media", "export", "--ids", "-", "--delete-after", "--to"])
            .arg(dir.path())
            .write_stdin(ids),
        1,
    );
    assert!(
        run.stderr.contains("failed missing-id (line 4): "),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("failed 1, deleted 3;"),
        "{}",
        run.stdout
    );
    let deleted: BTreeSet<String> = sandbox
        .log()
        .for_route(Route::OnPremDeleteMedia)
        .into_iter()
        .map(|e| e.path.trim_start_matches("/v1/media/").to_owned())
        .collect();
    let expected: BTreeSet<String> = files.iter().map(|m| m.media_id.clone()).collect();
    assert_eq!(deleted, expected);
    assert_eq!(assert_objects_verified(dir.path()), 3);
    let rows = manifest_rows(&dir.path().join("manifest.jsonl"));
    let missing = rows.iter().find(|r| r["id"] == "missing-id").unwrap();
    assert_eq!(missing["reason"]["kind"], "not_found");
}

#[test]
fn archive_usage_errors_exit_2() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    std::fs::write(&hooks, "").unwrap();
    for (args, says) in [
        (
            vec!["--shard", "0/2", "--to", "x"],
            "I must be between 1 and N",
        ),
        (vec!["--to", "gs://bucket/p"], "not supported"),
        (vec!["--to", "s3://bucket/p"], "needs --manifest"),
    ] {
        let run = expect(
            against(&sandbox)
                .args(["media", "archive", "--from"])
                .arg(&hooks)
                .args(&args),
            2,
        );
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn media_archive_to_s3_configured_from_the_environment() {
    let Some(s3) = S3Server::start_for_test("media_archive_to_s3") else {
        return;
    };
    s3.create_bucket("media").unwrap();
    let sandbox = sandbox();
    let files: Vec<InboundMessage> = (0..3).map(|i| receive(&sandbox, i)).collect();
    let text: String = files
        .iter()
        .map(|m| m.webhook_body.clone() + "\n")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let mut cmd = against(&sandbox);
    cmd.envs(s3.env());
    let run = expect(
        cmd.args([
            "media",
            "archive",
            "--from",
            "-",
            "--to",
            "s3://media/wa",
            "--manifest",
        ])
        .arg(&manifest)
        .write_stdin(text),
        0,
    );
    assert!(
        run.stdout.starts_with("stored 3, skipped 0"),
        "{}",
        run.stdout
    );
    let keys: BTreeSet<String> = manifest_rows(&manifest)
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = files
        .iter()
        .map(|m| format!("wa/{}.png", m.sha256))
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn failing_ids_stop_nothing_are_reported_with_reasons_and_only_they_are_retried() {
    let sandbox = sandbox();
    let good = receive(&sandbox, 0);
    let other = receive(&sandbox, 1);
    let tampered = receive(&sandbox, 2);
    let wrong = Sha256Digest::of(b"something else").to_string();
    let unknown = other.webhook_body.replace(&other.media_id, "no-such-media");
    let lines = [
        good.webhook_body.clone(),
        unknown,
        tampered
            .webhook_body
            .replace(&tampered.sha256.to_string(), &wrong),
        good.webhook_body.clone(), // a duplicate webhook
    ];
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    std::fs::write(&hooks, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    let archive = || {
        let mut cmd = against(&sandbox);
        cmd.args(["media", "archive", "--concurrency", "1", "--from"])
            .arg(&hooks)
            .arg("--to")
            .arg(&out);
        cmd
    };
    let reasons = |rows: &[Value]| -> Vec<(String, String)> {
        let mut got: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["reason"]["kind"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        got.sort();
        got
    };
    let manifest = out.join("manifest.jsonl");
    // NXCloud answers 9001 to every getMedia: each item fails on its own, none stops the run.
    let busy = sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::UnknownCode(9001)));
    let run = expect(archive().arg("--json"), 1);
    let items: Vec<Value> = json_lines(&run.stdout)
        .into_iter()
        .filter(|l| l.get("outcome").is_some())
        .collect();
    assert_eq!(items.len(), 3, "each id once: {}", run.stdout);
    assert!(
        items.iter().all(|i| i["reason"]["code"] == 9001),
        "{items:?}"
    );
    let summary = json_lines(&run.stdout).pop().unwrap();
    assert_eq!(summary["duplicates"], 1, "{summary}");
    sandbox.faults().remove(busy);

    // Now the stored one is stored, the others fail for their own reasons, shown on stderr.
    let count = |route| sandbox.log().for_route(route).len();
    let before = (count(Route::GetMedia), count(Route::OssDownload));
    let run = expect(&mut archive(), 1);
    let second = (
        count(Route::GetMedia) - before.0,
        count(Route::OssDownload) - before.1,
    );
    assert!(
        run.stdout
            .starts_with("stored 1, skipped 0 (already stored), failed 2; 3 items"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .trim_end()
            .ends_with("; 1 repeated references to an id archived once"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("failed no-such-media (line 2): ")
            && run
                .stderr
                .contains(&format!("failed {} (line 3): ", tampered.media_id)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("SHA-256"), "{}", run.stderr);
    assert_eq!(reasons(&manifest_rows(&manifest)), {
        let mut want = vec![
            (good.media_id.clone(), "-".to_owned()),
            ("no-such-media".to_owned(), "not_found".to_owned()),
            (tampered.media_id.clone(), "integrity".to_owned()),
        ];
        want.sort();
        want
    });

    // A rerun does the same for the two that failed, and nothing for the stored one: one
    // getMedia and one download fewer, and the manifest says it was skipped.
    let before = (count(Route::GetMedia), count(Route::OssDownload));
    let run = expect(archive().arg("--json"), 1);
    let third = (
        count(Route::GetMedia) - before.0,
        count(Route::OssDownload) - before.1,
    );
    assert_eq!(
        third,
        (second.0 - 1, second.1 - 1),
        "{second:?} then {third:?}"
    );
    let outcomes: Vec<(String, String)> = json_lines(&run.stdout)
        .iter()
        .filter(|l| l.get("outcome").is_some())
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_owned(),
                l["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&(good.media_id.clone(), "skipped".to_owned())),
        "{outcomes:?}"
    );
    assert_eq!(assert_objects_verified(&out), 1);
}
