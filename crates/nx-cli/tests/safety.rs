//! The `nxcloud` binary on a real machine, with hostile servers and inputs (issue 15): what it
//! prints (escaped; commands shell-quoted), what it writes (`-o -`, devices and FIFOs in place,
//! `-o DIR`, modes), what it leaves when stopped by a signal (nothing), what it reads (capped),
//! and the messages a newcomer meets.
//!
//! Special files are made with `mknod`/`mkfifo` in temporary directories, never the machine's
//! `/dev`; servers bind 127.0.0.1:0.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nx_conformance::{CannedServer, files_in, malformed_answers_with_url};
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE as PHONE, DEMO_ONPREM_PASSWORD,
    DEMO_ONPREM_USER, Fault, FaultRule, Route, Sandbox,
};
use serde_json::Value;

mod common;
use common::*;

/// The command with no settings from the test's environment, reading nothing from stdin.
fn nxcloud() -> Command {
    let mut cmd = process();
    cmd.stdin(Stdio::null());
    cmd
}

/// The command with the demo account, pointed at `base`.
fn at(base: &str) -> Command {
    let mut cmd = nxcloud();
    demo_account(&mut cmd, base);
    cmd
}

fn demo_account(cmd: &mut Command, base: &str) {
    cmd.env("NXCLOUD_BASE_URL", base)
        .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
        .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET);
}

/// No control character but the newlines between lines.
fn assert_printable(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} holds {bad:?}: {text:?}");
}

/// Uploads `bytes` as `name` through the CLI; the id.
fn upload(sandbox: &Sandbox, dir: &Path, name: &str, bytes: &[u8]) -> String {
    common::upload(at(sandbox.base_url()), dir, name, bytes)
}

/// What a POSIX shell makes of `line` as arguments (`set -- LINE`): parsed, never run.
fn shell_words(line: &str) -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -- {line}; printf '%s\\0' \"$@\""))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// ---- 1. What is printed ----------------------------------------------------------------------

#[test]
fn webhook_fetch_lines_are_shell_quoted_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    let q = dir.path().join("q");
    let r = dir.path().join("r");
    let id = format!("x$(touch {})`touch {}`", p.display(), r.display());
    let phone = format!("1;touch {};", q.display());
    let body = serde_json::json!({
        "merchant_phone": phone,
        "messages": [{"from": "8617600000819", "id": "ABGH", "type": "image",
            "image": {"id": id, "mime_type": "image/jpeg"}}],
    });
    let text = expect(
        nxcloud()
            .args(["webhook", "parse"])
            .stdin(std::fs::File::open(write(dir.path(), "hook.json", &body)).unwrap()),
        0,
    );
    let line = fetch_line(&text.stdout);
    assert_eq!(
        shell_words(line),
        [
            "nxcloud", "media", "download", "--phone", &phone, "--id", &id, "-o", "FILE"
        ]
    );

    // On-Premises notification: backticks and `$(...)` in the id.
    let id = format!("`touch {}`$(touch {});", p.display(), q.display());
    let body = serde_json::json!({"media_items": [{"type": "image",
        "image": {"id": id, "mime_type": "image/jpeg", "status": "downloaded"}}]});
    let text = expect(
        nxcloud()
            .args(["webhook", "parse"])
            .stdin(std::fs::File::open(write(dir.path(), "note.json", &body)).unwrap()),
        0,
    );
    let line = fetch_line(&text.stdout);
    assert_eq!(
        shell_words(line),
        ["nxcloud", "onprem", "media", "get", &id, "-o", "FILE"]
    );
    for file in [&p, &q, &r] {
        assert!(!file.exists(), "{} was created", file.display());
    }
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn fetch_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("fetch: "))
        .unwrap_or_else(|| panic!("no fetch line: {stdout}"))
}

#[test]
fn webhook_values_with_control_characters_are_shown_escaped_never_as_commands() {
    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({
        "merchant_phone": "8617600000001",
        "messages": [{"from": "86\u{1b}[2J", "id": "ABGH", "type": "document",
            "document": {"id": "m\u{1b}]0;owned\u{7}\r\nfetch: rm -rf ~", "mime_type": "application/pdf",
                "filename": "a\0b\nc.pdf", "caption": "\u{202e}fdp.exe"}}],
    });
    let text = expect(
        nxcloud()
            .args(["webhook", "parse"])
            .stdin(std::fs::File::open(write(dir.path(), "h.json", &body)).unwrap()),
        0,
    );
    assert_printable("stdout", &text.stdout);
    assert!(!text.stdout.contains('\u{202e}'), "{}", text.stdout);
    assert!(text.stdout.contains("a\\0b\\nc.pdf"), "{}", text.stdout);
    assert_eq!(
        fetch_line(&text.stdout),
        "(not shown as a command: a value holds control characters; see --json)"
    );
    // The id's forged `\r\nfetch: rm -rf ~` stays on the id's line, as data.
    let fetch_lines = text
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("fetch:"));
    assert_eq!(fetch_lines.count(), 1, "{}", text.stdout);
    // --json is exact.
    let hook = json(
        &expect(
            nxcloud()
                .args(["--json", "webhook", "parse", "-"])
                .stdin(std::fs::File::open(write(dir.path(), "h.json", &body)).unwrap()),
            0,
        )
        .stdout,
    );
    assert_eq!(
        hook["media"][0]["id"],
        "m\u{1b}]0;owned\u{7}\r\nfetch: rm -rf ~"
    );
    assert_eq!(hook["media"][0]["filename"], "a\0b\nc.pdf");
}

/// A server answering getMedia and uploadMedia with control characters in every string.
fn hostile_text_server() -> CannedServer {
    CannedServer::start(|line, base| {
        let body = if line.contains("/api/wa/getMedia") && line.contains("POST") {
            serde_json::json!({"code": 0, "message": "ok", "data": {
                "mime_type": "image/png\u{1b}]0;x\u{7}",
                "file_name": "a\0b\u{1b}[31m\nc.png",
                "url": format!("{base}/oss/f?Expires=4102444800&Signature=s"),
            }})
        } else if line.contains("/api/wa/uploadMedia") {
            serde_json::json!({"code": 0, "message": "ok", "data": {"id": "id\u{1b}[2Jx\r\ny"}})
        } else if line.contains("/oss/f") {
            return (200, "image/png", PNG.to_vec());
        } else {
            serde_json::json!({"code": 9001, "message": "\u{1b}[2J\r\nhint: run rm -rf ~\0", "data": null})
        };
        (200, "application/json", body.to_string().into_bytes())
    })
}

#[test]
fn server_text_is_escaped_and_one_line_stays_one_line() {
    let server = hostile_text_server();
    // An error message forging a hint line.
    let run = expect(
        at(server.url()).args(["media", "delete", "--phone", PHONE, "--id", "m"]),
        3,
    );
    assert_printable("stderr", &run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{:?}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("\\r\\nhint: run"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("hint: code 9001"), "{lines:?}");
    // --json: exact.
    let run = expect(
        at(server.url()).args(["--json", "media", "delete", "--phone", PHONE, "--id", "m"]),
        3,
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let error = json(&run.stderr);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\u{1b}[2J\r\nhint: run rm -rf ~\0"),
        "{error}"
    );

    // File name and MIME type with NUL, ESC, newline.
    let run = expect(
        at(server.url()).args(["media", "get", "--phone", PHONE, "--id", "m"]),
        0,
    );
    assert_printable("stdout", &run.stdout);
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    assert!(
        run.stdout.contains("a\\0b\\u{1b}[31m\\nc.png"),
        "{}",
        run.stdout
    );
    let got = json(
        &expect(
            at(server.url()).args(["--json", "media", "get", "--phone", PHONE, "--id", "m"]),
            0,
        )
        .stdout,
    );
    assert_eq!(got["file_name"], "a\0b\u{1b}[31m\nc.png");

    // An upload id with ESC and CR/LF.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    std::fs::write(&png, PNG).unwrap();
    let run = expect(
        at(server.url())
            .args(["media", "upload", "--phone", PHONE])
            .arg(&png),
        0,
    );
    assert_eq!(run.stdout, "id\\u{1b}[2Jx\\r\\ny\n");

    // -o DIR with the server's hostile file name: a safe name inside DIR.
    let run = expect(
        at(server.url())
            .args(["media", "download", "--phone", PHONE, "--id", "m", "-o"])
            .arg(dir.path()),
        0,
    );
    assert_printable("stdout", &run.stdout);
    assert_eq!(files_in(dir.path()), ["a_b_[31m_c.png", "p.png"]);
    assert_eq!(
        std::fs::read(dir.path().join("a_b_[31m_c.png")).unwrap(),
        PNG
    );
}

#[test]
fn a_signed_url_in_a_malformed_answer_never_reaches_the_terminal() {
    let sig = "SIGcli0123456789abcdef%2Bz";
    let answers = malformed_answers_with_url("http://127.0.0.1:9", sig);
    for (what, body) in answers {
        let server =
            CannedServer::start(move |_, _| (200, "application/json", body.clone().into_bytes()));
        for args in [
            &["-vv", "media", "get", "--phone", PHONE, "--id", "m"][..],
            &[
                "--json", "-vv", "media", "get", "--phone", PHONE, "--id", "m",
            ][..],
        ] {
            let run = run(at(server.url()).args(args));
            assert_eq!(run.code, Some(3), "{what}: {}", run.stderr);
            for text in [&run.stdout, &run.stderr] {
                assert!(
                    !text.contains(sig) && !text.contains("Signature="),
                    "{what}: {text}"
                );
            }
        }
    }
}

// ---- 3. What is written ----------------------------------------------------------------------

#[test]
fn dash_writes_the_bytes_to_stdout_and_reports_on_stderr() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    let run = expect_binary(
        at(sandbox.base_url()).args([
            "--json", "media", "download", "--phone", PHONE, "--id", &id, "-o", "-",
        ]),
        0,
    );
    assert_eq!(run.bytes, PNG);
    let report = json(&run.stderr);
    assert_eq!(report["path"], "stdout");
    assert_eq!(report["bytes"], PNG.len());
}

#[test]
fn a_directory_gets_the_server_name_and_bad_paths_are_refused_before_any_request() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    let out = tempfile::tempdir().unwrap();
    let saved_run = expect(
        at(sandbox.base_url())
            .args([
                "--json", "media", "download", "--phone", PHONE, "--id", &id, "-o",
            ])
            .arg(out.path()),
        0,
    );
    let saved = out.path().join("photo.png");
    assert_eq!(json(&saved_run.stdout)["path"], saved.display().to_string());
    assert_eq!(std::fs::read(&saved).unwrap(), PNG);
    assert_eq!(files_in(out.path()), ["photo.png"]);

    let gets = || sandbox.log().for_route(Route::GetMedia).len();
    let before = gets();
    let missing_dir = format!("{}/", out.path().join("nope").display());
    let missing_parent = out.path().join("nope/file.png");
    let not_a_dir = format!("{}/", saved.display());
    for bad in [
        missing_dir.as_str(),
        missing_parent.to_str().unwrap(),
        not_a_dir.as_str(),
    ] {
        let run = run(at(sandbox.base_url()).args([
            "media", "download", "--phone", PHONE, "--id", &id, "-o", bad,
        ]));
        assert!(
            matches!(run.code, Some(1 | 2)),
            "{bad}: {:?} {}",
            run.code,
            run.stderr
        );
        assert!(
            run.stderr.starts_with("error: -o "),
            "{bad}: {}",
            run.stderr
        );
    }
    assert_eq!(gets(), before, "no request was sent for a bad -o");
    // On-Premises: a directory gets a name made from the id.
    let onprem_out = tempfile::tempdir().unwrap();
    let up = expect(
        onprem(&sandbox)
            .args(["media", "upload"])
            .arg(dir.path().join("photo.png")),
        0,
    );
    let oid = up.stdout.trim().to_owned();
    expect(
        onprem(&sandbox)
            .args(["media", "get", &oid, "-o"])
            .arg(onprem_out.path()),
        0,
    );
    assert_eq!(files_in(onprem_out.path()), [format!("media-{oid}")]);
}

fn onprem(sandbox: &Sandbox) -> Command {
    let mut cmd = nxcloud();
    cmd.env("WA_ONPREM_URL", sandbox.base_url())
        .env("WA_ONPREM_USERNAME", DEMO_ONPREM_USER)
        .env("WA_ONPREM_PASSWORD", DEMO_ONPREM_PASSWORD)
        .arg("onprem");
    cmd
}

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
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    // Run under a umask of the test's choosing: `sh -c 'umask M; exec nxcloud ...'`.
    let with_umask = |umask: &str, out: &Path| {
        let mut sh = Command::new("sh");
        clear_env(&mut sh);
        demo_account(&mut sh, sandbox.base_url());
        sh.args(["-c", &format!("umask {umask}; exec \"$0\" \"$@\""), BIN])
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(out);
        expect(&mut sh, 0);
    };
    let new = dir.path().join("new.png");
    with_umask("027", &new);
    assert_eq!(mode(&new), 0o640);
    with_umask("002", &dir.path().join("new2.png"));
    assert_eq!(mode(&dir.path().join("new2.png")), 0o664);
    let replaced = dir.path().join("replaced.png");
    std::fs::write(&replaced, b"old").unwrap();
    std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(0o604)).unwrap();
    with_umask("077", &replaced);
    assert_eq!(mode(&replaced), 0o604);
    assert_eq!(std::fs::read(&replaced).unwrap(), PNG);
    // A symbolic link to a file keeps pointing at it.
    let link = dir.path().join("link.png");
    std::os::unix::fs::symlink(&replaced, &link).unwrap();
    with_umask("022", &link);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_and_a_character_device_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    let special = tempfile::tempdir().unwrap();

    let fifo = special.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let run = expect(
        at(sandbox.base_url())
            .args([
                "--json", "media", "download", "--phone", PHONE, "--id", &id, "-o",
            ])
            .arg(&fifo),
        0,
    );
    assert_eq!(reader.join().unwrap(), PNG);
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "still a FIFO"
    );
    assert!(
        json(&run.stdout)["note"]
            .as_str()
            .unwrap()
            .contains("a FIFO: written in place")
    );
    // A failed check on a FIFO: the bytes already went; the hint says so.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let zeros = "0".repeat(64);
    let run = expect(
        at(sandbox.base_url())
            .args([
                "media", "download", "--phone", PHONE, "--id", &id, "--sha256", &zeros, "-o",
            ])
            .arg(&fifo),
        5,
    );
    reader.join().unwrap();
    assert!(
        run.stderr
            .contains("hint: the bytes before the failed check already went to a FIFO"),
        "{}",
        run.stderr
    );

    if !is_root() {
        println!("skipped the character device: mknod needs root");
        return;
    }
    // A null device of our own (major 1, minor 3), in the temporary directory.
    let null = special.path().join("null");
    assert!(
        Command::new("mknod")
            .arg(&null)
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success()
    );
    let run = expect(
        at(sandbox.base_url())
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(&null),
        0,
    );
    assert!(
        run.stdout.contains("a character device: written in place"),
        "{}",
        run.stdout
    );
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device(),
        "still a device"
    );
    assert_eq!(
        files_in(special.path()),
        ["fifo", "null"],
        "nothing else left"
    );
}

// ---- 4. Stopping -----------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn each_signal_mid_download_leaves_nothing_and_ends_the_process_by_it() {
    let sandbox = sandbox();
    let id = dripping_media(&sandbox);
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        // SIGINT in text, the others with --json: reported as every failure is.
        let json = signal != "INT";
        let out = tempfile::tempdir().unwrap();
        let mut child = at(sandbox.base_url())
            .args(json.then_some("--json"))
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(out.path().join("big.png"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Mid-download: a staged file with bytes in it.
        let started = Instant::now();
        while staged_bytes(out.path()) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "SIG{signal}: the download never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            Command::new("kill")
                .args(["-s", signal, &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = wait(&mut child, Duration::from_secs(20));
        assert_eq!(status.signal(), Some(code - 128), "SIG{signal}");
        assert!(
            files_in(out.path()).is_empty(),
            "SIG{signal} left {:?}",
            files_in(out.path())
        );
        let stderr = drain(child.stderr.take());
        let message = format!("stopped by SIG{signal} before the transfer finished");
        if json {
            let line: Value = serde_json::from_str(stderr.trim())
                .unwrap_or_else(|e| panic!("SIG{signal}: not one JSON line ({e}): {stderr}"));
            let error = &line["error"];
            assert_eq!(error["kind"], "interrupted", "{stderr}");
            assert_eq!(error["exit_code"], code, "{stderr}");
            assert_eq!(error["message"], message.as_str(), "{stderr}");
        } else {
            assert_eq!(stderr, format!("error: {message}\n"));
        }
    }
}

/// Ctrl-C at a terminal signals the whole foreground process group: the shell running a loop
/// of `nxcloud` commands as well. bash then waits for the command and stops the script only if
/// the command was ended by the signal; one that exited (even with 130) reads as a command that
/// handled Ctrl-C, and the script goes on. `nxcloud` cleans up, then ends by the signal.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_shell_script_around_a_download() {
    use std::os::unix::process::CommandExt;
    let sandbox = sandbox();
    let id = dripping_media(&sandbox);
    let out = tempfile::tempdir().unwrap();
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(r#""$0" media download --phone "$1" --id "$2" -o "$3"; echo "the script went on""#)
        .arg(BIN)
        .args([PHONE, &id])
        .arg(out.path().join("big.png"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, as a terminal's foreground job is.
        .process_group(0);
    demo_account(&mut shell, sandbox.base_url());
    let mut child = shell.spawn().unwrap();
    let started = Instant::now();
    while staged_bytes(out.path()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let group = format!("-{}", child.id());
    assert!(
        Command::new("kill")
            .args(["-s", "INT", "--", &group])
            .status()
            .unwrap()
            .success()
    );
    let status = wait(&mut child, Duration::from_secs(20));
    let stdout = drain(child.stdout.take());
    assert_eq!(stdout, "", "the script must stop");
    assert_eq!(status.signal(), Some(2), "bash ends by SIGINT too");
    assert!(
        files_in(out.path()).is_empty(),
        "{:?}",
        files_in(out.path())
    );
}

/// A 20 KB media id whose download drips one byte per 2 ms: about 40 s, far longer than a
/// test waits.
fn dripping_media(sandbox: &Sandbox) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = PNG.to_vec();
    bytes.resize(20_000, b'.');
    let id = upload(sandbox, dir.path(), "big.png", &bytes);
    sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Drip(Duration::from_millis(2)),
    ));
    id
}

/// The bytes in the staging directories under `dir` (`.nx-download-*/**`).
fn staged_bytes(dir: &Path) -> u64 {
    fn walk(path: &Path) -> u64 {
        std::fs::read_dir(path).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(dir)
}

/// All that is left in a child's pipe (taken from it), as text.
fn drain(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    pipe.expect("the pipe was set up")
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the CLI did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 5. What is read -------------------------------------------------------------------------

/// Writes to `writer` until it fails (the reader went away), in 64 KiB chunks.
fn endless(mut writer: impl Write) {
    let chunk = vec![b'{'; 64 * 1024];
    while writer.write_all(&chunk).is_ok() {}
}

#[cfg(unix)]
#[test]
fn sign_stops_an_endless_body_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("endless");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            endless(std::fs::OpenOptions::new().write(true).open(fifo).unwrap())
        })
    };
    let sign = || {
        let mut cmd = nxcloud();
        cmd.args([
            "--access-key",
            "k",
            "--access-secret",
            "s",
            "sign",
            "--biz-type",
            "2",
            "--action",
            "a",
            "--ts",
            "1655710885431",
        ]);
        cmd
    };
    let run = expect(sign().arg("--body-file").arg(&fifo), 2);
    assert!(
        run.stderr
            .contains("is larger than 16777216 bytes and was not read further"),
        "{}",
        run.stderr
    );
    writer.join().unwrap();

    // stdin, endless too.
    let mut child = sign()
        .args(["--body-file", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || endless(stdin));
    let status = wait(&mut child, Duration::from_secs(60));
    writer.join().unwrap();
    let stderr = drain(child.stderr.take());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stdin is larger than"), "{stderr}");
}

#[test]
fn sign_explain_shows_a_body_with_control_characters_escaped() {
    let body = "{\"a\":\"\u{1b}[2J\r\n4. sign = md5(3): x\"}";
    let run = expect(
        nxcloud().args([
            "--access-key",
            "k",
            "--access-secret",
            "s",
            "sign",
            "--biz-type",
            "2",
            "--action",
            "a",
            "--ts",
            "1655710885431",
            "--explain",
            "--body",
            body,
        ]),
        0,
    );
    assert_printable("stderr", &run.stderr);
    let fourth = run.stderr.lines().filter(|l| l.starts_with("4. ")).count();
    assert_eq!(fourth, 1, "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn an_upload_from_a_fifo_is_read_whole_then_sent() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("photo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, PNG).unwrap())
    };
    let run = expect(
        at(sandbox.base_url())
            .args(["--json", "media", "upload", "--phone", PHONE])
            .arg(&fifo),
        0,
    );
    writer.join().unwrap();
    let up = json(&run.stdout);
    // No extension: the type comes from the leading bytes.
    assert_eq!(up["mime_type"], "image/png");
    assert_eq!(up["bytes"], PNG.len());
}

// ---- 6. Messages -----------------------------------------------------------------------------

#[test]
fn usage_lines_do_not_ask_for_what_the_environment_gave() {
    let run = expect(
        at("http://127.0.0.1:9").args(["media", "get", "--phone", PHONE]),
        2,
    );
    let usage = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage: "))
        .unwrap();
    assert_eq!(usage, "Usage: nxcloud media get --phone <P> --id <ID>");
}

#[test]
fn onprem_messages_say_what_happened() {
    let sandbox = sandbox();
    let run = expect(
        nxcloud().args(["onprem", "--url", sandbox.base_url(), "login"]),
        2,
    );
    assert!(
        run.stderr
            .contains("login needs --username and --password (or WA_ONPREM_USERNAME")
            && run.stderr.contains("; or --password-file PATH)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("already logged in"), "{}", run.stderr);

    let run = expect(
        nxcloud().args([
            "onprem",
            "--url",
            sandbox.base_url(),
            "--username",
            "admin",
            "--password",
            "wrong",
            "media",
            "delete",
            "x",
        ]),
        6,
    );
    assert!(
        run.stderr
            .contains("hint: the user name and password, or the token, were refused"),
        "{}",
        run.stderr
    );
    let run = expect(
        nxcloud().args([
            "onprem",
            "--url",
            sandbox.base_url(),
            "--token",
            "sbxnot-a-token",
            "media",
            "delete",
            "x",
        ]),
        6,
    );
    assert!(run.stderr.contains("were refused"), "{}", run.stderr);

    // Meta: a 404 with no body is "not found".
    let server = CannedServer::start(|line, _| match line.contains("/v1/users/login") {
        true => (
            200,
            "application/json",
            br#"{"users":[{"token":"t","expires_after":"2100-01-01 00:00:00+00:00"}]}"#.to_vec(),
        ),
        false => (404, "text/plain", Vec::new()),
    });
    let out = tempfile::tempdir().unwrap();
    let run = expect(
        nxcloud()
            .args([
                "onprem",
                "--url",
                server.url(),
                "--token",
                "t",
                "media",
                "get",
                "gone",
                "-o",
            ])
            .arg(out.path().join("f")),
        3,
    );
    assert!(
        run.stderr
            .starts_with("error: not found (HTTP 404 with no body)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: not found: the id is unknown or was deleted"),
        "{}",
        run.stderr
    );
}

#[test]
fn redirect_hints_know_where_the_redirect_came_from() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::Redirect {
            location: "http://127.0.0.1:9/elsewhere".into(),
        },
    ));
    let run = expect(
        at(sandbox.base_url())
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(dir.path().join("c.png")),
        3,
    );
    assert!(run.stderr.contains("hint: the download URL (NXCloud's object storage, not the base URL) answered a redirect"), "{}", run.stderr);
    let server =
        CannedServer::start(|_, _| (302, "text/html", b"<a href=https://x/>moved</a>".to_vec()));
    let run = expect(
        at(server.url()).args(["media", "get", "--phone", PHONE, "--id", "m"]),
        3,
    );
    assert!(
        run.stderr.contains(
            "hint: the server answered a redirect, which is not followed: check the base URL"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn sandbox_json_banner_and_busy_port() {
    let mut child = nxcloud()
        .args(["--json", "sandbox", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait(&mut child, Duration::from_secs(20));
    let banner = json(&first);
    assert!(
        banner["listening"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{banner}"
    );
    assert_eq!(banner["onprem"]["user"], DEMO_ONPREM_USER);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = expect(nxcloud().args(["sandbox", "--addr", &addr]), 1);
    assert!(
        run.stderr.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn verbosity_levels_differ_and_connect_errors_keep_the_port() {
    let sandbox = sandbox();
    let get = |v: &str| {
        run(at(sandbox.base_url()).args([v, "media", "get", "--phone", PHONE, "--id", "nope"]))
            .stderr
    };
    let (debug, trace) = (get("-v"), get("-vv"));
    assert!(
        debug.contains("DEBUG") && !debug.contains("time.busy"),
        "{debug}"
    );
    assert!(
        trace.contains("time.busy") && trace.contains(".rs:"),
        "{trace}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = expect(
        at(&format!("http://127.0.0.1:{port}")).args([
            "--timeout",
            "10",
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "x",
        ]),
        4,
    );
    assert!(
        run.stderr
            .starts_with(&format!("error: could not connect to 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_1003_points_at_sign_explain_and_json_downloads_report_the_sha256() {
    let sandbox = sandbox();
    let run = expect(
        nxcloud().env("NXCLOUD_BASE_URL", sandbox.base_url()).args([
            "--access-key",
            DEMO_ACCESS_KEY,
            "--access-secret",
            "wrong",
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "x",
        ]),
        6,
    );
    assert!(
        run.stderr.contains("nxcloud sign --explain"),
        "{}",
        run.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    let run = expect(
        at(sandbox.base_url())
            .args([
                "--json", "media", "download", "--phone", PHONE, "--id", &id, "-o",
            ])
            .arg(dir.path().join("c.png")),
        0,
    );
    let saved = json(&run.stdout);
    assert_eq!(
        saved["sha256"],
        nx_protocol::download::Sha256Digest::of(PNG).to_string()
    );
    assert_eq!(saved["sha256_verified"], false);
}

/// A file that grows while `nxcloud media upload` sends it: a raw server reads the start of the
/// body, the file grows, the server reads on. The command fails (exit 1) saying the file
/// changed, naming it and its declared length, and the server never got the whole declared
/// body (so it cannot have taken a cut file for the upload). The file is far larger than the
/// socket buffers hold, so the command reads its end only after it grew.
#[test]
fn an_upload_whose_file_grows_is_never_sent_whole() {
    const LEN: usize = 48 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grows.pdf");
    let mut data = b"%PDF-1.4\n".to_vec();
    data.resize(LEN, b'x');
    std::fs::write(&path, &data).unwrap();
    drop(data);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let grown = path.clone();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0; 64 << 10];
        let mut read = |stream: &mut std::net::TcpStream, seen: &mut Vec<u8>| {
            let n = stream.read(&mut buf).unwrap_or(0);
            seen.extend_from_slice(&buf[..n]);
            n
        };
        // The head, and the first MiB of the body.
        let head_end = loop {
            assert!(read(&mut stream, &mut seen) > 0, "the request ended early");
            if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&seen[..head_end]).to_lowercase();
        let declared: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a Content-Length")
            .trim()
            .parse()
            .unwrap();
        while seen.len() < head_end + (1 << 20) {
            assert!(read(&mut stream, &mut seen) > 0, "the request ended early");
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&grown)
            .unwrap();
        file.write_all(b"appended").unwrap();
        let mut body = seen.len() - head_end;
        while body < declared {
            match read(&mut stream, &mut seen) {
                0 => break,
                n => body += n,
            }
            seen.clear();
        }
        (declared, body)
    });

    let out = at(&base)
        .args(["media", "upload", "--phone", PHONE])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("changed while it was sent"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("{LEN} bytes were declared")),
        "{stderr}"
    );
    let (declared, body) = server.join().unwrap();
    assert!(declared > LEN, "the form holds the file: {declared}");
    assert!(
        body < declared,
        "the whole body was sent: {body} of {declared}"
    );
}
