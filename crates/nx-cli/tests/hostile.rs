//! The `nxcloud` binary against hostile servers and on real users' terminals (issue cli): what
//! reaches a terminal (also as `--json`, on a pty, with `TERM=dumb` and `NO_COLOR`), where a
//! server's file name may write, what a closed pipe does, which exit code says what, and how an
//! archive, an upload and a send stop on a signal. Servers bind 127.0.0.1:0; a pty comes from
//! python3's `pty`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nx_conformance::{CannedServer, files_in};
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE as PHONE, Fault, FaultRule, Inbound,
    Route, S3Server,
};
use serde_json::Value;

mod common;
use common::*;

/// The command with the demo account, pointed at `base`, reading nothing from stdin.
fn at(base: &str) -> Command {
    let mut cmd = process();
    cmd.stdin(Stdio::null())
        .env("NXCLOUD_BASE_URL", base)
        .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
        .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET);
    cmd
}

/// Text a terminal acts on or hides: ESC and the other C0 controls but newline, DEL, C1 (also
/// as its UTF-8 bytes), bidirectional controls, zero-width and other invisible characters.
fn terminal_active(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(
                    c,
                    '\u{ad}'
                        | '\u{61c}'
                        | '\u{200b}'..='\u{200f}'
                        | '\u{2028}'..='\u{202e}'
                        | '\u{2060}'..='\u{206f}'
                        | '\u{feff}'
                        | '\u{e0000}'..='\u{e007f}'
                )
        })
        .collect()
}

fn assert_terminal_safe(what: &str, text: &str) {
    let bad = terminal_active(text);
    assert!(bad.is_empty(), "{what} holds {bad:?}: {text:?}");
}

/// Every kind of hostile text at once: CSI, OSC 8 (a hyperlink hiding its target), OSC 52
/// (writes the clipboard), C1 CSI as UTF-8, a right-to-left override, isolates, zero-width
/// characters, a tag character, DEL, CR (overwriting the line) and a forged second line.
const HOSTILE: &str = "a\u{1b}[31mred\u{1b}]8;;https://evil.example/\u{1b}\\click\u{1b}]8;;\u{1b}\\\
     \u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{9b}2J\u{202e}gnp.exe\u{2066}x\u{2069}\u{200b}\u{feff}\u{e0041}\u{7f}\rhint: forged\nline2";

/// A server answering getMedia with `file_name` and `mime_type` of its choosing, uploads with
/// an id of HOSTILE, anything else with code 9001 and HOSTILE as the message; the download URL
/// serves PNG.
fn server_with(file_name: Arc<Mutex<String>>) -> CannedServer {
    CannedServer::start(move |line, base| {
        let body = if line.contains("/api/wa/getMedia") {
            serde_json::json!({"code": 0, "message": "ok", "data": {
                "mime_type": format!("image/png{HOSTILE}"),
                "file_name": file_name.lock().unwrap().clone(),
                "url": format!("{base}/oss/f?Expires=4102444800&Signature=s"),
            }})
        } else if line.contains("/api/wa/uploadMedia") {
            serde_json::json!({"code": 0, "message": "ok", "data": {"id": HOSTILE}})
        } else if line.contains("/oss/f") {
            return (200, "image/png", PNG.to_vec());
        } else {
            serde_json::json!({"code": 9001, "message": HOSTILE, "data": null})
        };
        (200, "application/json", body.to_string().into_bytes())
    })
}

fn hostile_server() -> (CannedServer, Arc<Mutex<String>>) {
    let name = Arc::new(Mutex::new(format!("{HOSTILE}.png")));
    (server_with(Arc::clone(&name)), name)
}

#[test]
fn json_output_is_exact_and_holds_nothing_a_terminal_acts_on() {
    let (server, _) = hostile_server();
    // Results: the JSON escapes what serde_json alone leaves raw (DEL, C1, bidi, zero-width).
    let run = expect(
        at(server.url()).args(["--json", "media", "get", "--phone", PHONE, "--id", "m"]),
        0,
    );
    assert_terminal_safe("stdout", &run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let got = run.json();
    assert_eq!(
        got["file_name"],
        format!("{HOSTILE}.png"),
        "exact after parsing"
    );
    assert_eq!(got["mime_type"], format!("image/png{HOSTILE}"));
    for escape in [
        "\\u009b",
        "\\u202e",
        "\\u200b",
        "\\ufeff",
        "\\udb40\\udc41",
        "\\u007f",
    ] {
        assert!(run.stdout.contains(escape), "{escape}: {}", run.stdout);
    }
    // Errors.
    let run = expect(
        at(server.url()).args(["--json", "media", "delete", "--phone", PHONE, "--id", "m"]),
        3,
    );
    assert_terminal_safe("stderr", &run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.json_error()["message"]
            .as_str()
            .unwrap()
            .contains(HOSTILE)
    );
    // The report of a download to a directory.
    let dir = tempfile::tempdir().unwrap();
    let run = expect(
        at(server.url())
            .args([
                "--json", "media", "download", "--phone", PHONE, "--id", "m", "-o",
            ])
            .arg(dir.path()),
        0,
    );
    assert_terminal_safe("stdout", &run.stdout);
    // An upload's id.
    let png = dir.path().join("p.png");
    std::fs::write(&png, PNG).unwrap();
    let run = expect(
        at(server.url())
            .args(["--json", "media", "upload", "--phone", PHONE])
            .arg(&png),
        0,
    );
    assert_terminal_safe("stdout", &run.stdout);
    assert_eq!(run.json()["id"], HOSTILE);
}

#[test]
fn text_output_shows_every_hostile_character_and_one_line_stays_one() {
    let (server, _) = hostile_server();
    let run = expect(
        at(server.url()).args(["media", "get", "--phone", PHONE, "--id", "m"]),
        0,
    );
    assert_terminal_safe("stdout", &run.stdout);
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    for shown in [
        "\\u{1b}]8;;https://evil.example/",
        "\\u{1b}]52;c;",
        "\\u{9b}2J",
        "\\u{202e}gnp.exe\\u{2066}x\\u{2069}\\u{200b}\\u{feff}\\u{e0041}\\u{7f}\\rhint: forged\\nline2",
    ] {
        assert!(run.stdout.contains(shown), "{shown}: {}", run.stdout);
    }
    let run = expect(
        at(server.url()).args(["media", "delete", "--phone", PHONE, "--id", "m"]),
        3,
    );
    assert_terminal_safe("stderr", &run.stderr);
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    // A pasted command would not be what it looks like: none is offered.
    let hook = serde_json::json!({
        "messages": [{"from": "86176", "id": "w1", "timestamp": "1", "type": "image",
                      "image": {"id": "ab\u{200b}c", "mime_type": "image/png"}}],
        "merchant_phone": PHONE, "messaging_product": "whatsapp"
    });
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), hook.to_string()).unwrap();
    let run = expect(process().args(["webhook", "parse"]).arg(path.path()), 0);
    assert_terminal_safe("stdout", &run.stdout);
    assert!(run.stdout.contains("ab\\u{200b}c"), "{}", run.stdout);
    assert!(
        run.stdout.contains("not shown as a command"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_very_long_server_string_is_cut_on_the_terminal_and_whole_in_json() {
    let name = Arc::new(Mutex::new(format!("{}.png", "n".repeat(200_000))));
    let server = server_with(Arc::clone(&name));
    let run = expect(
        at(server.url()).args(["media", "get", "--phone", PHONE, "--id", "m"]),
        0,
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("file_name: "))
        .unwrap();
    assert!(line.len() < 1200, "{} bytes", line.len());
    assert!(line.ends_with("...[198980 more bytes]"), "{line}");
    let run = expect(
        at(server.url()).args(["--json", "media", "get", "--phone", PHONE, "--id", "m"]),
        0,
    );
    assert_eq!(run.json()["file_name"], *name.lock().unwrap());
}

// ---- Terminals: a pty, TERM=dumb, NO_COLOR ------------------------------------------------

/// Runs `cmd` on a pty (stdin, stdout and stderr, as in a user's terminal): what the terminal
/// received, and the exit code.
fn on_pty(cmd: &Command) -> (String, i32) {
    const PTY: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
"#;
    let mut python = Command::new("python3");
    python.arg("-c").arg(PTY).arg(cmd.get_program());
    python.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => python.env(key, value),
            None => python.env_remove(key),
        };
    }
    let output = python.output().expect("python3 runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

#[test]
fn a_dumb_terminal_gets_no_progress_bar_and_no_color_gets_no_color() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = PNG.to_vec();
    bytes.resize(2 << 20, 7);
    let id = upload(at(sandbox.base_url()), dir.path(), "big.png", &bytes);
    let download = |term: &str| {
        let mut cmd = at(sandbox.base_url());
        cmd.env("TERM", term)
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(dir.path().join(format!("copy-{term}.png")));
        on_pty(&cmd)
    };
    // On a terminal that can draw, the bar draws (the pty works).
    let (seen, code) = download("xterm");
    assert_eq!(code, 0, "{seen}");
    assert!(seen.contains('\u{1b}'), "no bar drawn: {seen:?}");
    let (seen, code) = download("dumb");
    assert_eq!(code, 0, "{seen}");
    assert!(!seen.contains('\u{1b}'), "{seen:?}");
    assert!(seen.contains("saved 2097152 bytes"), "{seen:?}");

    // Help is styled on a terminal, plain with NO_COLOR or TERM=dumb; a usage error is plain.
    for (args, styled) in [(&["--help"][..], true), (&["media", "get"][..], false)] {
        let mut cmd = process();
        cmd.env("TERM", "xterm").args(args);
        let (seen, code) = on_pty(&cmd);
        assert_eq!(seen.contains('\u{1b}'), styled, "{args:?}: {seen:?}");
        assert_eq!(code, if styled { 0 } else { 2 }, "{args:?}: {seen:?}");
        // Also under `CI`, where clap's own choice would style even a dumb terminal.
        for (var, value) in [("NO_COLOR", "1"), ("TERM", "dumb")] {
            for ci in [false, true] {
                let mut cmd = process();
                cmd.env("TERM", "xterm").env(var, value).args(args);
                if ci {
                    cmd.env("CI", "true");
                } else {
                    cmd.env_remove("CI");
                }
                let (plain, _) = on_pty(&cmd);
                assert!(!plain.contains('\u{1b}'), "{var}, CI {ci}: {plain:?}");
            }
        }
    }
}

// ---- File names from a server ---------------------------------------------------------------

#[test]
fn a_server_file_name_writes_one_new_file_inside_the_directory_and_replaces_nothing() {
    let (server, name) = hostile_server();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("downloads");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.path().join("x"), b"outside").unwrap();
    let download = |given: &str| -> (String, Vec<String>) {
        *name.lock().unwrap() = given.to_owned();
        let before = files_in(&dir);
        let run = expect(
            at(server.url())
                .args([
                    "--json", "media", "download", "--phone", PHONE, "--id", "m", "-o",
                ])
                .arg(&dir),
            0,
        );
        let path = run.json()["path"].as_str().unwrap().to_owned();
        let after = files_in(&dir);
        let new: Vec<String> = after.into_iter().filter(|f| !before.contains(f)).collect();
        assert_eq!(new.len(), 1, "{given:?}: one new file, {new:?}");
        assert_eq!(Path::new(&path), dir.join(&new[0]), "{given:?}: the report");
        assert_eq!(std::fs::read(&path).unwrap(), PNG, "{given:?}");
        (new[0].clone(), files_in(root.path()))
    };
    let long = format!("{}.jpeg", "x".repeat(300));
    for (given, made) in [
        ("../x", "_x"),
        ("/etc/passwd", "_etc_passwd"),
        ("a/b", "a_b"),
        ("a\0b.png", "a_b.png"),
        (".", "media-m"),
        ("..", "media-m"),
        ("", "media-m"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("a:b?.png", "a_b_.png"),
        (long.as_str(), &format!("{}.jpeg", "x".repeat(195))),
    ] {
        let (new, root_files) = download(given);
        if made == "media-m" {
            assert!(new.starts_with("media-m"), "{given:?}: {new}");
        } else {
            assert_eq!(new, made, "{given:?}");
        }
        assert_eq!(root_files, ["downloads", "x"], "{given:?}: nothing outside");
    }
    assert_eq!(std::fs::read(root.path().join("x")).unwrap(), b"outside");

    // A file of the user's, a planted link, a directory: each kept; the download takes the
    // next free name.
    std::fs::write(dir.join("photo.png"), b"mine").unwrap();
    assert_eq!(download("photo.png").0, "photo-1.png");
    assert_eq!(std::fs::read(dir.join("photo.png")).unwrap(), b"mine");
    assert_eq!(download("photo.png").0, "photo-2.png");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.path().join("planted"), dir.join("link.png")).unwrap();
        assert_eq!(download("link.png").0, "link-1.png");
        assert!(
            !root.path().join("planted").exists(),
            "the link was not followed"
        );
        assert!(
            std::fs::symlink_metadata(dir.join("link.png"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    std::fs::create_dir(dir.join("d.png")).unwrap();
    assert_eq!(download("d.png").0, "d-1.png");
    // Names that differ only by case or by Unicode normalisation are different files here
    // (Linux); where the file system takes them for one (macOS), the link fails as taken
    // and the next name is used, the same path as above.
    assert_eq!(download("Photo.png").0, "Photo.png");
    assert_eq!(download("e\u{301}.png").0, "e\u{301}.png");
    assert_eq!(download("\u{e9}.png").0, "\u{e9}.png");
    // No staging directory is left.
    assert!(
        files_in(&dir).iter().all(|f| !f.starts_with(".nx-")),
        "{:?}",
        files_in(&dir)
    );
}

// ---- Closed pipes ---------------------------------------------------------------------------

/// Runs `cmd` with stdout and stderr pipes of which `closed` are closed before it writes:
/// its stderr (when kept open) and exit code.
fn with_closed(mut cmd: Command, close_stdout: bool, close_stderr: bool) -> (String, Option<i32>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut kept = String::new();
    let stdout = if close_stdout {
        drop(stdout);
        None
    } else {
        Some(stdout)
    };
    if close_stderr {
        drop(stderr);
    } else {
        let mut stderr = stderr;
        stderr.read_to_string(&mut kept).unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdout);
    (kept, status.code())
}

#[test]
fn a_closed_stdout_or_stderr_never_panics() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = PNG.to_vec();
    bytes.resize(1 << 20, 1);
    let id = upload(at(sandbox.base_url()), dir.path(), "p.png", &bytes);
    let base = sandbox.base_url();
    let get = ["media", "get", "--phone", PHONE, "--id", id.as_str()];
    let to_stdout = [
        "media",
        "download",
        "--phone",
        PHONE,
        "--id",
        id.as_str(),
        "-o",
        "-",
    ];
    for args in [&get[..], &to_stdout[..]] {
        for json in [false, true] {
            let mut cmd = at(base);
            if json {
                cmd.arg("--json");
            }
            cmd.args(args);
            let (stderr, code) = with_closed(cmd, true, false);
            assert!(
                !stderr.contains("panicked") && !stderr.contains("backtrace"),
                "{args:?}: {stderr}"
            );
            assert_eq!(code, Some(1), "{args:?}: {stderr}");
            assert!(stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        }
    }
    // stderr closed: a usage error, and an archive reporting a failed item.
    let mut usage = process();
    usage.args(["media", "get"]);
    assert_eq!(with_closed(usage, false, true).1, Some(2));
    let hooks = dir.path().join("hooks.jsonl");
    let hook = serde_json::json!({
        "messages": [{"from": "86176", "id": "w1", "timestamp": "1", "type": "image",
                      "image": {"id": "no-such-id", "mime_type": "image/png",
                                "sha256": "00".repeat(32)}}],
        "merchant_phone": PHONE, "messaging_product": "whatsapp"
    });
    std::fs::write(&hooks, format!("{hook}\n")).unwrap();
    let mut archive = at(base);
    archive
        .args(["media", "archive", "--from"])
        .arg(&hooks)
        .arg("--to")
        .arg(dir.path().join("out"));
    assert_eq!(with_closed(archive, false, true).1, Some(1));
}

// ---- Exit codes -----------------------------------------------------------------------------

#[test]
fn refused_credentials_exit_6_apart_from_other_api_errors() {
    let sandbox = sandbox();
    let mut cmd = process();
    cmd.env("NXCLOUD_BASE_URL", sandbox.base_url())
        .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
        .env("NXCLOUD_ACCESS_SECRET", "not-the-secret")
        .args(["--json", "media", "delete", "--phone", PHONE, "--id", "x"]);
    let run = expect(&mut cmd, 6);
    let error = run.json_error();
    assert_eq!(error["kind"], "auth");
    assert_eq!(error["api_code"], 1003);
    // An unknown id with the right secret: an API error (3), not authentication.
    let run = expect(
        at(sandbox.base_url()).args(["--json", "media", "delete", "--phone", PHONE, "--id", "x"]),
        3,
    );
    assert_eq!(run.json_error()["kind"], "api");
}

// ---- Archive runs stopped by a signal -------------------------------------------------------

/// A raw NXCloud stand-in for one document: getMedia answers a URL on itself, whose GET sends
/// the head of a `len`-byte file, `sent` bytes of it, and then holds the connection until the
/// server is dropped.
struct HoldingServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl HoldingServer {
    fn start(len: usize, sent: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (base, halt) = (url.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (base, halt) = (base.clone(), Arc::clone(&halt));
                std::thread::spawn(move || Self::serve(stream, &base, &halt, len, sent));
            }
        });
        Self { url, stop }
    }

    fn serve(mut stream: TcpStream, base: &str, halt: &AtomicBool, len: usize, sent: usize) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        let _ = stream.read_exact(&mut body);
        if head.starts_with("POST") {
            let answer = serde_json::json!({"code": 0, "message": "ok", "data": {
                "mime_type": "application/pdf", "file_name": "d.pdf",
                "url": format!("{base}/oss/d?Expires=4102444800&Signature=s"),
            }})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            return;
        }
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
        );
        let chunk = vec![b'%'; 64 * 1024];
        let mut done = 0;
        while done < sent {
            let n = chunk.len().min(sent - done);
            if stream.write_all(&chunk[..n]).is_err() {
                return;
            }
            done += n;
        }
        while !halt.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HoldingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every file under `dir`, with its path relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hooks file of one document that [`HoldingServer`] holds mid-transfer.
fn held_document_hooks(dir: &Path) -> std::path::PathBuf {
    let hooks = dir.join("hooks.jsonl");
    let hook = serde_json::json!({
        "messages": [{"from": "86176", "id": "w1", "timestamp": "1", "type": "document",
                      "document": {"id": "doc-1", "mime_type": "application/pdf",
                                   "sha256": "11".repeat(32)}}],
        "merchant_phone": PHONE, "messaging_product": "whatsapp"
    });
    std::fs::write(&hooks, format!("{hook}\n")).unwrap();
    hooks
}

/// What a child with a piped stderr wrote there, and how it ended.
fn end_of(mut child: std::process::Child) -> (String, std::process::ExitStatus) {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    (stderr, child.wait().unwrap())
}

fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn a_signal_mid_transfer_ends_the_process_by_it_and_leaves_no_temporary_file() {
    // 20 MiB announced, 12 MiB sent (past the 8 MiB part, so the upload is a multipart one
    // with a temporary file), then held.
    let server = HoldingServer::start(20 << 20, 12 << 20);
    for (name, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let dir = tempfile::tempdir().unwrap();
        let hooks = held_document_hooks(dir.path());
        let out = dir.path().join("out");
        let child = at(&server.url)
            .args(["media", "archive", "--from"])
            .arg(&hooks)
            .arg("--to")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("a temporary file", Duration::from_secs(60), || {
            out.is_dir() && walk(&out).iter().any(|f| f.contains('#'))
        });
        signal(&child, name);
        let started = Instant::now();
        let (stderr, status) = end_of(child);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: slow stop"
        );
        // Nothing but the (empty) manifest: no temporary file, no object.
        assert_eq!(walk(&out), ["manifest.jsonl"], "{name}");
        assert_eq!(status.signal(), Some(code - 128), "{name}: {stderr}");
        assert!(
            stderr.contains("error: interrupted after 0 of 1 items"),
            "{stderr}"
        );
        assert!(
            stderr.contains("hint: run the same command again"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(std::fs::read(out.join("manifest.jsonl")).unwrap(), b"");
    }
}

/// An unsigned GET to moto (which takes them): the answer's body.
fn s3_get(s3: &S3Server, path: &str) -> String {
    let mut stream = TcpStream::connect(s3.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        s3.addr()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_signal_mid_transfer_to_s3_aborts_the_multipart_upload() {
    let Some(s3) = S3Server::start_for_test("a_signal_mid_transfer_to_s3") else {
        return;
    };
    s3.create_bucket("media").unwrap();
    let server = HoldingServer::start(20 << 20, 12 << 20);
    let dir = tempfile::tempdir().unwrap();
    let hooks = held_document_hooks(dir.path());
    let manifest = dir.path().join("m.jsonl");
    let child = at(&server.url)
        .envs(s3.env())
        .args(["media", "archive", "--from"])
        .arg(&hooks)
        .args(["--to", "s3://media/wa", "--manifest"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("a multipart upload", Duration::from_secs(60), || {
        s3_get(&s3, "/media?uploads").contains("<UploadId>")
    });
    signal(&child, "INT");
    let (stderr, status) = end_of(child);
    let uploads = s3_get(&s3, "/media?uploads");
    assert!(
        !uploads.contains("<UploadId>"),
        "left incomplete: {uploads}"
    );
    let objects = s3_get(&s3, "/media?list-type=2");
    assert!(!objects.contains("<Key>"), "{objects}");
    assert_eq!(status.signal(), Some(2), "{stderr}");
    assert_eq!(std::fs::read(&manifest).unwrap(), b"");
}

#[test]
fn a_second_ctrl_c_quits_without_waiting_for_the_first_to_finish() {
    let sandbox = sandbox();
    let message = sandbox
        .receive_inbound(Inbound::new("image", "image/png", PNG.to_vec()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    std::fs::write(&hooks, message.webhook_body.clone() + "\n").unwrap();
    let out = dir.path().join("out");
    // The delete after storing hangs: the first Ctrl-C waits for it (the item is verified and
    // recorded), the second does not.
    let _slow = sandbox.faults().add(FaultRule::new(
        Route::DeleteMedia,
        Fault::Latency(Duration::from_secs(60)),
    ));
    let mut child = at(sandbox.base_url())
        .args(["media", "archive", "--delete-after", "--from"])
        .arg(&hooks)
        .arg("--to")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let manifest = out.join("manifest.jsonl");
    wait_for("the stored row", Duration::from_secs(60), || {
        std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("\"stored\""))
    });
    // The row is synced before the delete is sent.
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C waits"
    );
    signal(&child, "INT");
    let started = Instant::now();
    let (stderr, status) = end_of(child);
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    assert_eq!(status.signal(), Some(2), "{stderr}");
    assert!(stderr.contains("a second Ctrl-C quits at once"), "{stderr}");
    // The stored row stays: a rerun stores nothing again.
    let rows: Vec<Value> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "stored");
}

/// A command an interrupted-upload case runs: `nxcloud media ...` with the demo account, or
/// `nxcloud onprem ...` with the demo installation's login.
fn upload_or_send(sandbox: &nx_sandbox::Sandbox, onprem: bool) -> Command {
    if !onprem {
        let mut cmd = at(sandbox.base_url());
        cmd.env("NXCLOUD_APPKEY", nx_sandbox::DEMO_APPKEY);
        return cmd;
    }
    let mut cmd = process();
    cmd.stdin(Stdio::null())
        .env("WA_ONPREM_URL", sandbox.base_url())
        .env("WA_ONPREM_USERNAME", nx_sandbox::DEMO_ONPREM_USER)
        .env("WA_ONPREM_PASSWORD", nx_sandbox::DEMO_ONPREM_PASSWORD)
        .arg("onprem");
    cmd
}

/// One case of the test below: a command stopped while the sandbox holds one of its requests.
struct Stop<'a> {
    /// The signal's name for `kill`.
    signal: &'a str,
    /// Whether `--json` is given.
    json: bool,
    /// Whether it is an On-Premises command.
    onprem: bool,
    /// The command's arguments.
    args: &'a [&'a str],
    /// The route whose request the sandbox holds when the signal comes.
    held: Route,
    /// What the report says after `stopped by SIGxxx `.
    said: &'a str,
}

/// An upload or a send stopped by a signal while the server holds its request: nothing is left
/// locally but the server may have carried it out, and the report says so (text: one `error:`
/// line and a hint; `--json`: exactly one JSON line of kind `interrupted`); the process still
/// ends by the signal itself, as a download's does, so a shell script around it stops.
#[cfg(unix)]
#[test]
fn an_interrupted_upload_or_send_says_it_may_have_reached_the_server_and_ends_by_the_signal() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(at(sandbox.base_url()), dir.path(), "p.png", PNG);
    let png = dir.path().join("p.png");
    let png = png.to_str().unwrap();
    let customer = nx_sandbox::DEMO_CUSTOMER_PHONE;
    let send = ["media", "send", "--phone", PHONE, "--to", customer];
    let upload_file = ["media", "upload", "--phone", PHONE, png];
    let onprem_file = ["media", "upload", png];
    let send_file = [&send[..], &[png]].concat();
    let send_id = [&send[..], &["--id", &id, "--type", "image"]].concat();
    let uploading = "during the upload: the file may or may not have reached the server";
    let step_one = "while uploading the file (step 1/2): it may or may not have reached the \
                    server; no message was sent";
    let sending = "while sending the message: it may or may not have been delivered";
    let case = |signal, json, onprem, args, held, said| Stop {
        signal,
        json,
        onprem,
        args,
        held,
        said,
    };
    let cases = [
        case(
            "INT",
            false,
            false,
            &upload_file,
            Route::UploadMedia,
            uploading,
        ),
        case(
            "TERM",
            true,
            false,
            &upload_file,
            Route::UploadMedia,
            uploading,
        ),
        case(
            "HUP",
            true,
            true,
            &onprem_file,
            Route::OnPremUpload,
            uploading,
        ),
        case(
            "INT",
            false,
            false,
            &send_file,
            Route::UploadMedia,
            step_one,
        ),
        case("TERM", true, false, &send_file, Route::SendMessage, sending),
        case("HUP", false, false, &send_id, Route::SendMessage, sending),
    ];
    for Stop {
        signal: name,
        json,
        onprem,
        args,
        held: route,
        said,
    } in cases
    {
        let case = format!("SIG{name} {}", args.join(" "));
        let held = sandbox.faults().add(FaultRule::new(
            route,
            Fault::Latency(Duration::from_secs(60)),
        ));
        let child = upload_or_send(&sandbox, onprem)
            .args(json.then_some("--json"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The server holds the request: it has arrived, and no answer will come.
        wait_for(&case, Duration::from_secs(30), || {
            sandbox.faults().fired(held) == 1
        });
        signal(&child, name);
        let started = Instant::now();
        let output = child.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{case}: slow stop"
        );
        sandbox.faults().remove(held);
        let stderr = String::from_utf8(output.stderr).unwrap();
        let number = match name {
            "INT" => 2,
            "TERM" => 15,
            _ => 1,
        };
        assert_eq!(output.status.signal(), Some(number), "{case}: {stderr}");
        assert_eq!(output.stdout, b"", "{case}: no result");
        assert_eq!(files_in(dir.path()), ["p.png"], "{case}");
        let message = format!("stopped by SIG{name} {said}");
        let hint = if json {
            assert_eq!(stderr.lines().count(), 1, "{case}: one line: {stderr}");
            let line: Value = serde_json::from_str(&stderr)
                .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {stderr}"));
            let error = &line["error"];
            assert_eq!(error["kind"], "interrupted", "{case}: {stderr}");
            assert_eq!(error["exit_code"], 128 + number, "{case}: {stderr}");
            assert_eq!(error["message"], message.as_str(), "{case}: {stderr}");
            error["hint"].as_str().unwrap().to_owned()
        } else {
            let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error: "));
            assert_eq!(
                lines.next(),
                Some(format!("error: {message}").as_str()),
                "{case}: {stderr}"
            );
            let hint = lines.next().and_then(|l| l.strip_prefix("hint: "));
            assert_eq!(lines.next(), None, "{case}: {stderr}");
            hint.unwrap_or_else(|| panic!("{case}: no hint: {stderr}"))
                .to_owned()
        };
        if route == Route::SendMessage {
            assert!(
                hint.starts_with("check whether it went out before sending it again"),
                "{case}: {hint}"
            );
        } else {
            assert!(
                hint.starts_with("nothing was left locally"),
                "{case}: {hint}"
            );
        }
        // `media send FILE` stopped while sending: the upload's id is named, and is real.
        if args.contains(&png) && route == Route::SendMessage {
            let named = hint
                .split("media id ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("{case}: no media id: {hint}"));
            expect(
                at(sandbox.base_url()).args(["media", "get", "--phone", PHONE, "--id", named]),
                0,
            );
        }
    }
}

#[test]
fn an_object_stored_in_s3_before_a_crash_but_not_recorded_is_found_not_fetched_again() {
    let Some(s3) = S3Server::start_for_test("an_object_stored_in_s3_before_a_crash") else {
        return;
    };
    s3.create_bucket("media").unwrap();
    let sandbox = sandbox();
    let mut bytes = PNG.to_vec();
    bytes.extend_from_slice(b" stored before the crash");
    let message = sandbox
        .receive_inbound(Inbound::new("image", "image/png", bytes.clone()))
        .unwrap();
    // What a run that was killed between the upload and the manifest row leaves: the object
    // at its content address, no row.
    let key = format!("/media/wa/{}.png", message.sha256);
    let mut stream = TcpStream::connect(s3.addr()).unwrap();
    write!(
        stream,
        "PUT {key} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        s3.addr(),
        bytes.len()
    )
    .unwrap();
    stream.write_all(&bytes).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks.jsonl");
    std::fs::write(&hooks, message.webhook_body.clone() + "\n").unwrap();
    let manifest = dir.path().join("m.jsonl");
    let mut cmd = at(sandbox.base_url());
    cmd.envs(s3.env())
        .args(["--json", "media", "archive", "--from"])
        .arg(&hooks)
        .args(["--to", "s3://media/wa", "--manifest"])
        .arg(&manifest);
    let run = expect(&mut cmd, 0);
    let item = json(run.stdout.lines().next().unwrap());
    assert_eq!(item["outcome"], "already_stored", "{}", run.stdout);
    assert_eq!(item["status"], "stored");
    assert_eq!(item["key"], key.trim_start_matches("/media/"));
    assert_eq!(sandbox.log().for_route(Route::OssDownload).len(), 0);
    assert_eq!(sandbox.log().for_route(Route::GetMedia).len(), 0);
    let rows = std::fs::read_to_string(&manifest).unwrap();
    assert_eq!(rows.lines().count(), 1, "{rows}");
}

#[test]
fn verbose_logs_and_onprem_errors_hold_nothing_a_terminal_acts_on() {
    let (server, _) = hostile_server();
    for level in ["-v", "-vv"] {
        let run = expect(
            at(server.url()).args([level, "media", "delete", "--phone", PHONE, "--id", "m"]),
            3,
        );
        assert_terminal_safe(level, &run.stderr);
    }
    // Meta's error title and details.
    let meta = CannedServer::start(|line, _| {
        if line.contains("/v1/users/login") {
            let body = r#"{"users":[{"token":"t","expires_after":"2099-01-01 00:00:00+00:00"}]}"#;
            return (200, "application/json", body.as_bytes().to_vec());
        }
        let body = serde_json::json!({"meta": {"api_status": "stable", "version": "3"},
            "errors": [{"code": 1014, "title": HOSTILE, "details": HOSTILE}]});
        (400, "application/json", body.to_string().into_bytes())
    });
    for json in [false, true] {
        let mut cmd = process();
        cmd.stdin(Stdio::null()).args([
            "onprem",
            "--url",
            meta.url(),
            "--username",
            "u",
            "--password",
            "p",
        ]);
        if json {
            cmd.arg("--json");
        }
        cmd.args(["-v", "media", "delete", "x"]);
        let run = expect(&mut cmd, 3);
        assert_terminal_safe("stderr", &run.stderr);
        assert!(run.stderr.contains("1014"), "{}", run.stderr);
    }
}
