//! `nxcloud media archive` and `nxcloud onprem media export`: every media file of a source
//! (webhook bodies, ids, notifications) fetched, verified and stored under its content address
//! in a directory or an S3 bucket, through `nx_archive` on `nx-async`. A manifest records each
//! id, so a rerun (after a failure, Ctrl-C or a kill) does only what is left.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use nx_archive::{
    Api, Archive, Destination, ItemReport, Manifest, Observer, Options, Outcome, Shard, Source,
    SourceKind, Store, StoreError, Summary,
};

use crate::args::{GlobalArgs, OnPremArgs};
use crate::clients;
use crate::exit::{CliError, Exit};
use crate::input;
use crate::interrupt::Signals;
use crate::output::{Output, stdout_line};
use crate::terminal;

/// Where and how an archive run stores (shared by both commands).
#[derive(Debug, Args)]
pub(crate) struct ArchiveTarget {
    /// Where to store: a directory (created if missing), or `s3://bucket/prefix` configured
    /// by AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (S3-compatible
    /// stores) and AWS_ALLOW_HTTP. Keys are `<prefix>/<sha256>.<extension>`.
    #[arg(long, value_name = "DEST")]
    pub(crate) to: String,
    /// The manifest (JSON lines, one row per media id) [default: DEST/manifest.jsonl for a
    /// directory; required for S3].
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest: Option<PathBuf>,
    /// Files in flight at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub(crate) concurrency: u16,
    /// Delete each media from the API once its object is stored, verified and recorded.
    #[arg(long)]
    pub(crate) delete_after: bool,
    /// Take only shard I of N (1-based): the ids whose SHA-256, first 8 bytes big-endian,
    /// mod N is I-1. N machines with the same source and 1/N..N/N share the work.
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<Shard>,
}

/// `nxcloud media archive`.
#[derive(Debug, Args)]
pub(crate) struct MediaArchiveArgs {
    /// NXCloud inbound webhook bodies, one JSON document per line (`-` for stdin).
    #[arg(long, value_name = "FILE|-")]
    pub(crate) from: PathBuf,
    /// Destination and options.
    #[command(flatten)]
    pub(crate) target: ArchiveTarget,
}

/// `nxcloud onprem media export`.
#[derive(Debug, Args)]
pub(crate) struct OnPremExportArgs {
    /// Media ids, one per line; a line starting with `{` is read as an On-Premises media
    /// notification or inbound webhook body (ids, types and SHA-256 are taken from it). `-`
    /// for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub(crate) ids: PathBuf,
    /// Destination and options.
    #[command(flatten)]
    pub(crate) target: ArchiveTarget,
}

/// Runs `nxcloud media archive`.
pub(crate) fn media(
    global: &GlobalArgs,
    args: &MediaArchiveArgs,
    out: Output,
) -> Result<(), CliError> {
    let client = clients::nxcloud_with(global, nx_async::Client::builder())?;
    archive(
        Api::NxCloud(client),
        SourceKind::NxCloudWebhooks,
        &args.from,
        &args.target,
        out,
    )
}

/// Runs `nxcloud onprem media export`.
pub(crate) fn onprem(
    global: &GlobalArgs,
    connection: &OnPremArgs,
    args: &OnPremExportArgs,
    out: Output,
) -> Result<(), CliError> {
    let client = clients::onprem_with(global, connection, nx_async::OnPremClient::builder())?;
    archive(
        Api::OnPrem(client),
        SourceKind::OnPrem,
        &args.ids,
        &args.target,
        out,
    )
}

fn read_source(kind: SourceKind, from: &Path) -> Result<Source, CliError> {
    let result = if from == Path::new("-") {
        Source::read(kind, std::io::stdin().lock())
    } else {
        let file = File::open(from)
            .map_err(|e| CliError::io(format!("opening {}", input::name_of(from)), e))?;
        Source::read(kind, BufReader::new(file))
    };
    result.map_err(|e| CliError::io(format!("reading {}", input::name_of(from)), e))
}

fn store_error(error: StoreError) -> CliError {
    match error {
        StoreError::Config(message) => CliError::usage(message),
        other => CliError::failure(other.to_string()),
    }
}

fn archive(
    api: Api,
    kind: SourceKind,
    from: &Path,
    target: &ArchiveTarget,
    out: Output,
) -> Result<(), CliError> {
    let destination: Destination = target.to.parse().map_err(store_error)?;
    let manifest_path = match (&target.manifest, &destination) {
        (Some(path), _) => path.clone(),
        (None, Destination::Local(dir)) => dir.join("manifest.jsonl"),
        (None, _) => {
            return Err(CliError::usage(
                "an S3 destination needs --manifest PATH (a local file the run records each id in)",
            ));
        }
    };
    let mut source = read_source(kind, from)?;
    let store = Store::open(&destination).map_err(store_error)?;
    let (manifest, previous) =
        Manifest::open(&manifest_path).map_err(|e| CliError::failure(e.to_string()))?;
    let options = Options::default()
        .concurrency(usize::from(target.concurrency))
        .delete_after(target.delete_after)
        .shard(target.shard);
    for rejected in &source.rejected {
        report_rejected(out, rejected)?;
    }
    let display = Arc::new(Display::new(out));
    let archive = Archive::with_options(
        api,
        store,
        manifest,
        previous,
        options,
        Arc::clone(&display) as Arc<dyn Observer>,
    );
    let (items, _) = archive.select(source.items.clone());
    display.start(items.len() as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    let mut signals = {
        let _entered = runtime.enter();
        Signals::new()?
    };
    let interrupted = AtomicU8::new(0);
    // A signal stops the run cleanly: no new item, the uploads in flight aborted (nothing
    // unverified is visible, no temporary file is left), what was verified committed and
    // recorded. A second signal does not wait for that: it ends the process at once (what is recorded
    // stays recorded; an upload cut then is never visible).
    let (flag, shown) = (&interrupted, &display);
    let stop = async move {
        let code = signals.next().await;
        flag.store(code, Ordering::SeqCst);
        shown.note("stopping: finishing what is being recorded (a second Ctrl-C quits at once)");
        tokio::spawn(async move { crate::interrupt::die_by(signals.next().await) });
    };
    let result = runtime.block_on(archive.run_until(std::mem::take(&mut source.items), stop));
    display.finish();
    drop(runtime);
    let manifest_shown = terminal::shown(&manifest_path.display().to_string()).to_string();
    let summary = result.map_err(|e| CliError::failure(e.to_string()))?;
    let Some(summary) = summary else {
        let code = interrupted.load(Ordering::SeqCst);
        return Err(CliError::new(
            Exit::Signal(code),
            format!(
                "interrupted after {} of {} items; the manifest ({manifest_shown}) records what was stored",
                display.done.load(Ordering::Relaxed),
                items.len()
            ),
        )
        .with_hint("run the same command again to resume"));
    };
    print_summary(out, &summary, &source, &manifest_shown)?;
    let rejected = source.rejected.len();
    if summary.failed > 0 || rejected > 0 {
        let mut what = Vec::new();
        if summary.failed > 0 {
            what.push(format!(
                "{} of {} items failed",
                summary.failed, summary.total
            ));
        }
        if rejected > 0 {
            what.push(format!("{rejected} source lines could not be read"));
        }
        return Err(CliError::failure(format!(
            "{}; the manifest ({manifest_shown}) says which and why",
            what.join(", ")
        ))
        .with_hint("run the same command again to retry the failed items"));
    }
    Ok(())
}

fn report_rejected(out: Output, rejected: &nx_archive::LineError) -> Result<(), CliError> {
    if out.is_json() {
        out.json(&serde_json::json!({
            "rejected": { "line": rejected.line, "reason": rejected.reason }
        }))
    } else {
        let line = format!(
            "skipped line {}: {}",
            rejected.line,
            terminal::shown(&rejected.reason)
        );
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        Ok(())
    }
}

/// The run's last line; it also says how many references repeated an id (each id is
/// archived once), so that its counts add up to the source's.
fn print_summary(
    out: Output,
    summary: &Summary,
    source: &Source,
    manifest: &str,
) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(&serde_json::json!({
            "summary": summary,
            "rejected_lines": source.rejected.len(),
            "duplicates": source.duplicates,
            "manifest": manifest,
        }));
    }
    let secs = summary.elapsed_ms as f64 / 1000.0;
    let mut line = format!(
        "stored {}, skipped {} (already stored), failed {}",
        summary.stored,
        summary.skipped + summary.already_stored,
        summary.failed
    );
    if summary.deleted > 0 {
        line.push_str(&format!(", deleted {}", summary.deleted));
    }
    line.push_str(&format!(
        "; {} items, {} in {secs:.1} s",
        summary.total,
        HumanBytes(summary.bytes)
    ));
    if summary.other_shards > 0 {
        line.push_str(&format!(", {} left to other shards", summary.other_shards));
    }
    if source.duplicates > 0 {
        line.push_str(&format!(
            "; {} repeated references to an id archived once",
            source.duplicates
        ));
    }
    stdout_line(&line)
}

/// Progress and per-item output, fed by the workers.
struct Display {
    out: Output,
    bar: Option<ProgressBar>,
    started: Instant,
    bytes: AtomicU64,
    failed: AtomicU64,
    done: AtomicU64,
}

impl Display {
    /// A progress bar only on a terminal that can draw it, and without `--json` (logs and
    /// scripts stay clean).
    fn new(out: Output) -> Self {
        let bar = (!out.is_json() && terminal::stderr_draws_progress()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} files  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            out,
            bar,
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    fn start(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    fn refresh(&self) {
        let Some(bar) = &self.bar else { return };
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{}  {}/s  {} failed",
            HumanBytes(bytes),
            HumanBytes((bytes as f64 / secs) as u64),
            self.failed.load(Ordering::Relaxed)
        ));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A line on stderr (above the bar), not with `--json`.
    fn note(&self, line: &str) {
        if self.out.is_json() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| crate::output::note(line)),
            None => crate::output::note(line),
        }
    }
}

impl Observer for Display {
    fn bytes(&self, n: u64) {
        let before = self.bytes.fetch_add(n, Ordering::Relaxed);
        // The message is rebuilt about once per MiB, not per chunk.
        if (before >> 20) != ((before + n) >> 20) {
            self.refresh();
        }
    }

    fn finished(&self, report: &ItemReport) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if report.outcome == Outcome::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.out.is_json() {
            let _ = self.out.json(report);
        } else if report.outcome == Outcome::Failed {
            let reason = report
                .row
                .reason
                .as_ref()
                .map_or("", |r| r.message.as_str());
            self.note(&format!(
                "failed {} (line {}): {}",
                terminal::shown(&report.row.id),
                report.row.line,
                terminal::shown(reason)
            ));
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.refresh();
    }
}
