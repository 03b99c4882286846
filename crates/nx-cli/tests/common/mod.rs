//! What every test of the `nxcloud` binary shares: the binary with nothing from the test's
//! environment, a sandbox on 127.0.0.1, a run's captured output (never the demo secret in it)
//! and its exit code, an upload through the CLI.
//!
//! Each test file keeps how it passes the demo account (options, or the environment), since
//! that is part of what some of them test.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part; pub for the test files

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use nx_sandbox::{DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE, Sandbox, SandboxConfig};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nxcloud");

/// A PNG's first bytes (signature and IHDR), enough for the CLI's type sniffing.
pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0 sample png bytes";

/// The proxy variables the CLI (curl's reading) would follow.
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Removes from `cmd`'s environment every setting the CLI reads that the test's own
/// environment may hold: `NXCLOUD_*`, `WA_ONPREM_*`, `AWS_*` (the archive's S3) and the proxy
/// variables.
pub fn clear_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if ["NXCLOUD_", "WA_ONPREM_", "AWS_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            cmd.env_remove(&var);
        }
    }
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// `nxcloud` with a cleared environment, as a process of its own (to spawn, signal or kill).
pub fn process() -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    clear_env(&mut cmd);
    cmd
}

/// `nxcloud` with a cleared environment, killed if it runs longer than 30 s.
pub fn nxcloud() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::from_std(process());
    cmd.timeout(Duration::from_secs(30));
    cmd
}

/// A sandbox with the default settings.
pub fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).expect("the sandbox starts")
}

/// A command that can be run to its end: `assert_cmd`'s, or a plain process.
pub trait Runnable {
    /// Appends `args`.
    fn push_args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>;
    /// Runs it to its end.
    fn run_to_end(&mut self) -> io::Result<Output>;
}

/// Both commands have the same two methods under these names.
macro_rules! runnable {
    ($($command:ty),*) => {$(
        impl Runnable for $command {
            fn push_args<I, S>(&mut self, args: I) -> &mut Self
            where
                I: IntoIterator<Item = S>,
                S: AsRef<OsStr>,
            {
                self.args(args)
            }
            fn run_to_end(&mut self) -> io::Result<Output> {
                self.output()
            }
        }
    )*};
}

runnable!(assert_cmd::Command, std::process::Command);

/// What a run printed and how it ended.
pub struct Run {
    /// The exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    /// stdout, as text (bytes that are not UTF-8 replaced: see [`Run::bytes`]).
    pub stdout: String,
    /// stderr (always UTF-8: the CLI escapes what it prints).
    pub stderr: String,
    /// stdout's bytes as written (`-o -` writes a file there).
    pub bytes: Vec<u8>,
}

impl Run {
    /// stdout as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The JSON error line on stderr (with `--json`).
    pub fn json_error(&self) -> Value {
        let value: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", self.stderr));
        value["error"].clone()
    }
}

/// Runs `cmd` to its end: its output, checked to be UTF-8 (stdout and stderr) and never to hold
/// the demo secret.
pub fn run(cmd: &mut impl Runnable) -> Run {
    let run = run_binary(cmd);
    assert!(
        std::str::from_utf8(&run.bytes).is_ok(),
        "stdout is not UTF-8: {:?}",
        run.stdout
    );
    run
}

/// [`run`] for a command whose stdout may be any bytes (`-o -`): stdout is then read lossily.
pub fn run_binary(cmd: &mut impl Runnable) -> Run {
    let output = cmd.run_to_end().expect("nxcloud runs");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        bytes: output.stdout,
    };
    let secret = DEMO_ACCESS_SECRET.as_bytes();
    assert!(
        !run.bytes.windows(secret.len()).any(|w| w == secret)
            && !run.stderr.contains(DEMO_ACCESS_SECRET),
        "the secret was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// [`run`], and its exit code must be `code`.
pub fn expect(cmd: &mut impl Runnable, code: i32) -> Run {
    exit_code(run(cmd), code)
}

/// [`run_binary`], and its exit code must be `code`.
pub fn expect_binary(cmd: &mut impl Runnable, code: i32) -> Run {
    exit_code(run_binary(cmd), code)
}

fn exit_code(run: Run, code: i32) -> Run {
    assert_eq!(
        run.code,
        Some(code),
        "exit code\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

/// `text` as one JSON value.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Writes `bytes` to `dir/name` and uploads it with `cmd` (a command with an account, pointed
/// at a sandbox) for the demo business phone: the media id it printed, one word.
pub fn upload(mut cmd: impl Runnable, dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let run = expect(
        cmd.push_args(["media", "upload", "--phone", DEMO_BUSINESS_PHONE])
            .push_args([&path]),
        0,
    );
    let id = run.stdout.trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{id:?}"
    );
    id
}
