//! Items 4 and 5: large downloads and uploads over loopback, each run in a child process of its
//! own (see [`crate::child`]) so that its peak resident memory is measured from outside the
//! transfer code: the kernel's `VmHWM` of that process.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::child::{Case, Outcome};
use crate::fixtures::{pattern_chunk, pattern_sha256, size_text, write_pattern_file};
use crate::procfs::{load_average, load_since};
use crate::report::{Bar, Comparison, Measure, Section};
use crate::server::ServerProcess;

const MIB: f64 = 1024.0 * 1024.0;

/// Runs `exe child <args>` and reads its outcome.
pub fn run_child(exe: &Path, args: &[String]) -> Result<Outcome, String> {
    let output = Command::new(exe)
        .arg("child")
        .args(args)
        .output()
        .map_err(|e| format!("starting {} child: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "child {args:?} failed ({}): {} {}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Outcome::from_json(stdout.lines().last().unwrap_or_default())
}

/// `runs` runs of each of `cases`, each a fresh `exe child <args(case)>` process, the cases
/// rotated run by run so each runs in each position; the figures per case, by [`index`].
pub(crate) fn child_runs(
    exe: &Path,
    runs: usize,
    cases: &[Case],
    args: impl Fn(Case) -> Vec<String>,
) -> Result<Vec<Figures>, String> {
    let mut figures = vec![Figures::default(); Case::ALL.len()];
    for run in 0..runs {
        let mut order = cases.to_vec();
        order.rotate_left(run % cases.len());
        for case in order {
            figures[index(case)].push(run_child(exe, &args(case))?);
        }
    }
    Ok(figures)
}

/// Per-case figures over runs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Figures {
    pub(crate) mib_per_sec: Vec<f64>,
    pub(crate) hwm_mib: Vec<f64>,
}

impl Figures {
    pub(crate) fn push(&mut self, outcome: Outcome) {
        self.mib_per_sec
            .push(outcome.len as f64 / MIB / outcome.secs);
        self.hwm_mib.push(outcome.hwm_kib as f64 / 1024.0);
    }
}

pub(crate) fn index(case: Case) -> usize {
    Case::ALL.iter().position(|c| *c == case).unwrap_or(0)
}

/// A peak-RSS row per case in `cases` for files of `size_text`; the SDK's rows are held to
/// 32 MiB, the raw clients' are there to compare.
pub(crate) fn rss_measures(size_text: &str, cases: &[Case], figures: &[Figures]) -> Vec<Measure> {
    cases
        .iter()
        .map(|&case| {
            Measure::new(
                format!("peak RSS, {size_text}, {}", case.name()),
                "MiB",
                &figures[index(case)].hwm_mib,
                if case.is_sdk() {
                    Bar::AtMost(32.0)
                } else {
                    Bar::Info
                },
            )
        })
        .collect()
}

/// How to run item 4.
#[derive(Clone, Debug)]
pub struct DownloadParams {
    /// Runs per case and size.
    pub runs: usize,
    /// File sizes (each gets a row of peak memory).
    pub sizes: Vec<u64>,
    /// The size whose throughput ratio is held to the bar.
    pub timed_size: u64,
    /// Where the downloaded files go.
    pub dir: PathBuf,
    /// Threads of the server child.
    pub server_workers: usize,
}

impl Default for DownloadParams {
    fn default() -> Self {
        Self {
            runs: 5,
            sizes: vec![16 << 20, 256 << 20, 1 << 30],
            timed_size: 256 << 20,
            dir: std::env::temp_dir(),
            server_workers: 1,
        }
    }
}

/// MiB/s of SHA-256 over `len` bytes fed in 64 KiB chunks from memory.
pub fn sha256_throughput(len: u64) -> f64 {
    let chunk = pattern_chunk();
    let start = Instant::now();
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(black_box(&chunk[..n]));
        left -= n as u64;
    }
    black_box(hasher.finalize());
    len as f64 / MIB / start.elapsed().as_secs_f64()
}

/// Runs item 4.
pub fn bench_download(
    exe: &Path,
    params: &DownloadParams,
    command: &str,
) -> Result<Section, String> {
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let dir = tempfile::Builder::new()
        .prefix("nx-bench-download-")
        .tempdir_in(&params.dir)
        .map_err(|e| format!("a temporary directory in {}: {e}", params.dir.display()))?;
    let mut comparisons = Vec::new();
    let mut measures = Vec::new();
    for &size in &params.sizes {
        let sha = hex::encode(pattern_sha256(size));
        let figures = child_runs(exe, params.runs, &Case::DOWNLOAD, |case| {
            vec![
                "download".to_owned(),
                case.name().to_owned(),
                base.clone(),
                size.to_string(),
                sha.clone(),
                dir.path().display().to_string(),
            ]
        })?;
        let bar = if size == params.timed_size {
            Bar::AtLeast(0.85)
        } else {
            Bar::Info
        };
        for (sdk, raw, verified) in [
            (Case::SdkAsync, Case::RawAsync, Case::RawAsyncVerified),
            (
                Case::SdkBlocking,
                Case::RawBlocking,
                Case::RawBlockingVerified,
            ),
        ] {
            comparisons.push(Comparison::new(
                format!(
                    "{}: {} (SHA-256 verified, temp file, fsync, rename) vs {} (stream to file)",
                    size_text(size),
                    sdk.name(),
                    raw.name()
                ),
                "MiB/s",
                &figures[index(sdk)].mib_per_sec,
                &figures[index(raw)].mib_per_sec,
                bar,
            ));
            comparisons.push(Comparison::new(
                format!(
                    "{}: {} vs {} (the same work by hand: SHA-256 of every chunk, fsync)",
                    size_text(size),
                    sdk.name(),
                    verified.name()
                ),
                "MiB/s",
                &figures[index(sdk)].mib_per_sec,
                &figures[index(verified)].mib_per_sec,
                Bar::Info,
            ));
        }
        comparisons.push(Comparison::new(
            format!(
                "{}: diagnostic: {} (SHA-256 on a second thread, overlapping receive and write; fsync) vs {} (stream to file)",
                size_text(size),
                Case::RawBlockingHashThread.name(),
                Case::RawBlocking.name()
            ),
            "MiB/s",
            &figures[index(Case::RawBlockingHashThread)].mib_per_sec,
            &figures[index(Case::RawBlocking)].mib_per_sec,
            Bar::Info,
        ));
        measures.extend(rss_measures(&size_text(size), &Case::UPLOAD, &figures));
    }
    let sha_runs: Vec<f64> = (0..params.runs)
        .map(|_| sha256_throughput(params.timed_size))
        .collect();
    measures.push(Measure::new(
        format!(
            "SHA-256 alone over {} in 64 KiB chunks (sha2 crate, in memory)",
            size_text(params.timed_size)
        ),
        "MiB/s",
        &sha_runs,
        Bar::Info,
    ));
    measures.sort_by_key(|m| !m.case.starts_with("SHA"));
    let load = load_since(load_start);
    Ok(Section {
        title: "4. Download to a file over loopback".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "SDK".into(),
        baseline_label: "raw client".into(),
        comparisons,
        measures,
        notes: vec![
            format!(
                "Each run is a fresh `nx-bench child download` process (client built, one GET, exit), the {} cases rotated run by run; the server is `nx-bench serve` ({} worker thread) streaming a repeated 64 KiB pattern with a Content-Length. Files go to {}.",
                Case::DOWNLOAD.len(),
                params.server_workers,
                params.dir.display()
            ),
            "The SDK side is `Client::download_to_path` with an expected SHA-256 (`DownloadOptions::sha256`): it streams into a temporary file beside the target, hashes every chunk, checks length and digest, `fsync`s and renames. The raw side streams the body into the file and nothing else (no hash, no fsync), as the item asks.".into(),
            "Peak RSS is the child's `VmHWM` from /proc/self/status at exit: everything the process ever had resident, runtime and binary included. The bar (32 MiB) applies to the SDK rows; the raw rows are there to compare.".into(),
        ],
    })
}

/// How to run item 5.
#[derive(Clone, Debug)]
pub struct UploadParams {
    /// Runs per case.
    pub runs: usize,
    /// The document's size.
    pub size: u64,
    /// Where the document is written.
    pub dir: PathBuf,
    /// Threads of the server child.
    pub server_workers: usize,
}

impl Default for UploadParams {
    fn default() -> Self {
        Self {
            runs: 5,
            size: 100 << 20,
            dir: std::env::temp_dir(),
            server_workers: 1,
        }
    }
}

/// Runs item 5.
pub fn bench_upload(exe: &Path, params: &UploadParams, command: &str) -> Result<Section, String> {
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let dir = tempfile::Builder::new()
        .prefix("nx-bench-upload-")
        .tempdir_in(&params.dir)
        .map_err(|e| format!("a temporary directory in {}: {e}", params.dir.display()))?;
    let file = dir.path().join("document.pdf");
    write_pattern_file(&file, params.size).map_err(|e| e.to_string())?;
    let figures = child_runs(exe, params.runs, &Case::UPLOAD, |case| {
        vec![
            "upload".to_owned(),
            case.name().to_owned(),
            base.clone(),
            file.display().to_string(),
        ]
    })?;
    let comparisons = [
        (Case::SdkAsync, Case::RawAsync),
        (Case::SdkBlocking, Case::RawBlocking),
    ]
    .into_iter()
    .map(|(sdk, raw)| {
        Comparison::new(
            format!(
                "{} document: {} `upload_media` vs {} streaming the same multipart body",
                size_text(params.size),
                sdk.name(),
                raw.name()
            ),
            "MiB/s",
            &figures[index(sdk)].mib_per_sec,
            &figures[index(raw)].mib_per_sec,
            Bar::AtLeast(0.9),
        )
    })
    .collect();
    let measures = rss_measures(&size_text(params.size), &Case::UPLOAD, &figures);
    let load = load_since(load_start);
    Ok(Section {
        title: "5. Upload of a document".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "SDK".into(),
        baseline_label: "raw client".into(),
        comparisons,
        measures,
        notes: vec![
            format!(
                "Each run is a fresh `nx-bench child upload` process, the four cases rotated run by run; the file is read from {} (warm in the page cache after the first run). The server (`nx-bench serve`, {} worker thread) reads and discards the body and answers `{}`.",
                params.dir.display(),
                params.server_workers,
                crate::server::UPLOAD_ENVELOPE
            ),
            "The raw clients send byte for byte the body and headers the SDK sends (head and tail built once before timing, with a fixed boundary), streaming the file in 64 KiB reads (hyper) or through `Read::chain` (ureq). The SDK side is `upload_media(phone, \"application/pdf\", UploadSource::path(..))`, which stats the file, validates type and size, signs, streams and parses the answer.".into(),
        ],
    })
}
