//! `nx-bench archive`: `nxcloud media archive` (one process, N files in flight) against the
//! single-file `nxcloud media download` run once per file in a loop, both the real binary
//! against an in-process sandbox, for many small files and a few large ones; the archive also
//! into a moto S3 server on 127.0.0.1. Reports files/s, MiB/s and each process's peak RSS
//! (`VmHWM`, sampled every 5 ms until it exits): the archive's must not grow with file size.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, Inbound, InboundMessage, S3Server, Sandbox, SandboxConfig,
};

const MIB: f64 = 1024.0 * 1024.0;

/// What `nx-bench archive` runs.
#[derive(Clone, Debug)]
pub struct ArchiveParams {
    /// How many small files.
    pub small: usize,
    /// Their size.
    pub small_size: u64,
    /// How many large files.
    pub large: usize,
    /// Their size.
    pub large_size: u64,
    /// Files in flight for the archive.
    pub concurrency: usize,
    /// Also archive into a moto S3 server.
    pub s3: bool,
    /// The `nxcloud` binary.
    pub nxcloud: PathBuf,
    /// Where the sandbox's storage and the archives go (a temporary directory under it).
    pub dir: PathBuf,
}

impl ArchiveParams {
    /// The brief's sizes: 1 000 files of 4 KiB, 10 of 100 MiB; `nxcloud` beside this program.
    pub fn new(nxcloud: PathBuf) -> Self {
        Self {
            small: 1000,
            small_size: 4 * 1024,
            large: 10,
            large_size: 100 * 1024 * 1024,
            concurrency: 4,
            s3: true,
            nxcloud,
            dir: std::env::temp_dir(),
        }
    }
}

/// One measured case.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The file set (`1000 x 4 KiB`).
    pub set: String,
    /// What ran.
    pub case: String,
    /// Files per second.
    pub files_per_s: f64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Peak RSS of the process (the largest of the loop's processes), MiB.
    pub peak_rss_mib: f64,
}

/// The results, and the Markdown section for BENCHMARKS.md.
#[derive(Clone, Debug)]
pub struct ArchiveReport {
    /// Every case.
    pub rows: Vec<Row>,
    /// The section.
    pub markdown: String,
}

struct Set {
    name: String,
    messages: Vec<InboundMessage>,
    hooks: PathBuf,
    bytes: u64,
}

fn make_set(
    sandbox: &Sandbox,
    dir: &Path,
    tag: &str,
    count: usize,
    size: u64,
) -> Result<Set, String> {
    let mut messages = Vec::with_capacity(count);
    let mut hooks = String::new();
    for i in 0..count {
        let mut bytes = format!("%PDF-1.4 {tag} {i} ").into_bytes();
        bytes.resize(size as usize, (i % 251) as u8);
        let message = sandbox
            .receive_inbound(Inbound::new("document", "application/pdf", bytes))
            .map_err(|e| e.to_string())?;
        hooks.push_str(&message.webhook_body);
        hooks.push('\n');
        messages.push(message);
    }
    let path = dir.join(format!("{tag}.jsonl"));
    std::fs::write(&path, hooks).map_err(|e| e.to_string())?;
    Ok(Set {
        name: format!("{count} x {}", human(size)),
        messages,
        hooks: path,
        bytes: count as u64 * size,
    })
}

fn human(size: u64) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// Runs `cmd` to its end, sampling its peak RSS; wall time and peak RSS in KiB.
fn measure(cmd: &mut Command) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {cmd:?}: {e}"))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        return Err(format!("{cmd:?} failed ({status}): {stderr}"));
    }
    Ok((elapsed, peak))
}

fn nxcloud(params: &ArchiveParams, sandbox: &Sandbox) -> Command {
    let mut cmd = Command::new(&params.nxcloud);
    cmd.args(["--base-url", sandbox.base_url()])
        .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
        .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET);
    cmd
}

fn row(set: &Set, case: &str, elapsed: Duration, peak_kib: u64) -> Row {
    let secs = elapsed.as_secs_f64();
    Row {
        set: set.name.clone(),
        case: case.to_owned(),
        files_per_s: set.messages.len() as f64 / secs,
        mib_per_s: set.bytes as f64 / MIB / secs,
        peak_rss_mib: peak_kib as f64 / 1024.0,
    }
}

/// Runs every case and renders the section; `command` is the line that reproduces it.
pub fn bench(params: &ArchiveParams, command: &str) -> Result<ArchiveReport, String> {
    if !params.nxcloud.is_file() {
        return Err(format!(
            "no nxcloud binary at {}: build it with `cargo build --release -p nx-cli` (or pass --nxcloud PATH)",
            params.nxcloud.display()
        ));
    }
    let load_start = crate::procfs::load_average().ok();
    let work = tempfile::Builder::new()
        .prefix("nx-bench-archive-")
        .tempdir_in(&params.dir)
        .map_err(|e| e.to_string())?;
    let storage = work.path().join("sandbox");
    std::fs::create_dir_all(&storage).map_err(|e| e.to_string())?;
    let total = params.small as u64 * params.small_size
        + params.large as u64 * (params.large_size + params.large_size / 4);
    let sandbox = Sandbox::start(
        SandboxConfig::default()
            .storage_dir(&storage)
            .max_storage_bytes(total + (64 << 20)),
    )
    .map_err(|e| e.to_string())?;
    // The large files at a quarter and at full size: the archive's peak RSS must not follow.
    let sets = [
        make_set(
            &sandbox,
            work.path(),
            "small",
            params.small,
            params.small_size,
        )?,
        make_set(
            &sandbox,
            work.path(),
            "quarter",
            params.large,
            params.large_size / 4,
        )?,
        make_set(
            &sandbox,
            work.path(),
            "large",
            params.large,
            params.large_size,
        )?,
    ];
    let s3 = if params.s3 {
        let server = S3Server::start().map_err(|e| e.to_string())?;
        server.create_bucket("bench").map_err(|e| e.to_string())?;
        Some(server)
    } else {
        None
    };
    let concurrency = params.concurrency.to_string();
    let mut rows = Vec::new();
    for (n, set) in sets.iter().enumerate() {
        // The single-file command, once per file.
        let loop_dir = work.path().join(format!("loop-{n}"));
        std::fs::create_dir_all(&loop_dir).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut peak = 0;
        for (i, m) in set.messages.iter().enumerate() {
            let (_, kib) = measure(
                nxcloud(params, &sandbox)
                    .args(["media", "download", "--phone", &m.merchant_phone, "--id"])
                    .arg(&m.media_id)
                    .arg("-o")
                    .arg(loop_dir.join(format!("{i}.pdf")))
                    .args(["--sha256", &m.sha256.to_string()]),
            )?;
            peak = peak.max(kib);
        }
        let looped = row(
            set,
            "`media download` in a loop -> directory",
            started.elapsed(),
            peak,
        );
        std::fs::remove_dir_all(&loop_dir).map_err(|e| e.to_string())?;

        let local = work.path().join(format!("archive-{n}"));
        let (elapsed, peak) = measure(
            nxcloud(params, &sandbox)
                .args(["media", "archive", "--concurrency", &concurrency, "--from"])
                .arg(&set.hooks)
                .arg("--to")
                .arg(&local),
        )?;
        let archived = row(set, "`media archive` -> directory", elapsed, peak);
        std::fs::remove_dir_all(&local).map_err(|e| e.to_string())?;
        rows.push(looped);
        rows.push(archived);

        if let Some(server) = &s3 {
            let manifest = work.path().join(format!("s3-{n}.jsonl"));
            let (elapsed, peak) = measure(
                nxcloud(params, &sandbox)
                    .envs(server.env())
                    .args(["media", "archive", "--concurrency", &concurrency, "--from"])
                    .arg(&set.hooks)
                    .args(["--to", &format!("s3://bench/run-{n}"), "--manifest"])
                    .arg(&manifest),
            )?;
            rows.push(row(set, "`media archive` -> S3 (moto)", elapsed, peak));
        }
    }
    let load_end = crate::procfs::load_average().ok();
    let markdown = render(params, command, &rows, load_start, load_end);
    Ok(ArchiveReport { rows, markdown })
}

fn render(
    params: &ArchiveParams,
    command: &str,
    rows: &[Row],
    load_start: Option<f64>,
    load_end: Option<f64>,
) -> String {
    let sig = crate::report::sig;
    let mut md = String::new();
    let _ = writeln!(md, "### Bulk archive: `nxcloud media archive`\n");
    let _ = writeln!(md, "```sh\n{command}\n```\n");
    let load = |l: Option<f64>| l.map_or_else(|| "unknown".to_owned(), |a| format!("{a}"));
    let _ = writeln!(
        md,
        "One run per case, concurrency {}, sandbox on 127.0.0.1; load average at start {}, at end {}.\n",
        params.concurrency,
        load(load_start),
        load(load_end)
    );
    let _ = writeln!(
        md,
        "| files | case | files/s | MiB/s | vs the loop | peak RSS |\n| --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let baseline = rows
            .iter()
            .find(|b| b.set == r.set && b.case.contains("loop"))
            .map_or(f64::NAN, |b| b.files_per_s);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {}x | {} MiB |",
            r.set,
            r.case,
            sig(r.files_per_s),
            sig(r.mib_per_s),
            sig(r.files_per_s / baseline),
            sig(r.peak_rss_mib)
        );
    }
    let mut sets: Vec<&str> = Vec::new();
    for r in rows {
        if !sets.contains(&r.set.as_str()) {
            sets.push(&r.set);
        }
    }
    let archive_rss = |set: &str| {
        rows.iter()
            .filter(|r| r.set == set && r.case.contains("archive"))
            .map(|r| r.peak_rss_mib)
            .reduce(f64::max)
    };
    if let [small, quarter, large] = sets[..]
        && let (Some(small), Some(quarter), Some(large)) =
            (archive_rss(small), archive_rss(quarter), archive_rss(large))
    {
        let _ = writeln!(
            md,
            "\nArchive peak RSS (the larger of directory and S3): {} MiB, {} MiB, {} MiB for the three sets; full-size over quarter-size files: {}x (the files are 4x larger).",
            sig(small),
            sig(quarter),
            sig(large),
            sig(large / quarter)
        );
    }
    md
}
