//! A smoke run of every benchmark item with tiny sizes: the harness works end to end (servers
//! and child processes included) and produces sane figures. Timings here mean nothing (debug
//! build, tiny sizes); the real runs are in BENCHMARKS.md.

use std::path::Path;

use nx_bench::peers::PeersDownloadParams;
use nx_bench::report::{Bar, Section, Summary};
use nx_bench::requests::RequestParams;
use nx_bench::sandbox::SandboxParams;
use nx_bench::sign::SignParams;
use nx_bench::transfer::{DownloadParams, UploadParams};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_nx-bench"))
}

/// Every figure is finite and positive (CPU time and context switches may be zero over a tiny
/// run), there are as many rows as asked for, the Markdown has a row per figure with its
/// verdict, and it gives the machine's load average at start and end of the run.
fn check(section: &Section, comparisons: usize, measures: usize) {
    let markdown = section.markdown();
    let cpu_ok = |s: &Summary| s.n > 0 && s.min.is_finite() && s.max.is_finite() && s.min >= 0.0;
    for c in &section.comparisons {
        if c.case.contains("CPU") || c.case.contains("context switches") {
            assert!(
                cpu_ok(&c.sdk) && cpu_ok(&c.baseline),
                "{}\n{markdown}",
                c.case
            );
        } else {
            assert!(
                c.sdk.is_sane() && c.baseline.is_sane() && c.ratio.is_sane(),
                "{}\n{markdown}",
                c.case
            );
        }
        assert_eq!(c.sdk.n, section.runs, "{markdown}");
        let verdict = match c.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "–",
        };
        let row = format!(
            "| {} | {} {} | {} {} | {} |",
            c.case,
            c.sdk.text(),
            c.unit,
            c.baseline.text(),
            c.unit,
            c.ratio.text()
        );
        assert_eq!(
            markdown
                .lines()
                .filter(|l| l.starts_with(&row) && l.ends_with(&format!(" {verdict} |")))
                .count(),
            1,
            "no row `{row} ... {verdict} |`\n{markdown}"
        );
    }
    for m in &section.measures {
        assert!(m.value.is_sane(), "{}\n{markdown}", m.case);
        let row = format!("| {} | {} {} |", m.case, m.value.text(), m.unit);
        assert_eq!(
            markdown.lines().filter(|l| l.starts_with(&row)).count(),
            1,
            "no row `{row}`\n{markdown}"
        );
    }
    assert_eq!(section.comparisons.len(), comparisons, "{markdown}");
    assert_eq!(section.measures.len(), measures, "{markdown}");
    let (start, end) = section
        .load
        .expect("the load average is read from /proc/loadavg");
    assert!(start >= 0.0 && end >= 0.0, "{start} / {end}");
    assert!(
        markdown.contains(&format!(
            "{} runs per figure; each cell is median (min – max). Load average of the machine at start / end: {start:.2} / {end:.2}.\n",
            section.runs
        )),
        "{markdown}"
    );
}

#[test]
fn sign_smoke() {
    let params = SignParams {
        runs: 3,
        iters: 500,
        body_len: 1024,
    };
    let section =
        nx_bench::sign::bench(&params, "cargo run --release -p nx-bench -- sign").unwrap();
    check(&section, 1, 1);
    // Signing hashes the same bytes as bare MD5 plus a little work: in the same ballpark even
    // unoptimized.
    let ratio = section.comparisons[0].ratio.median;
    assert!((0.5..5.0).contains(&ratio), "ratio {ratio}");
}

fn request_params() -> RequestParams {
    RequestParams {
        runs: 2,
        requests: 64,
        concurrency: vec![1, 8],
        server_workers: 1,
        only: None,
    }
}

/// From row `from` on, the rows of `requests::usage_rows`: user CPU, system CPU, voluntary
/// and involuntary context switches, each at both of [`request_params`]' concurrencies, held to
/// nothing; and user plus system time is the CPU time.
fn usage_rows_follow(section: &Section, from: usize) {
    let concurrency = request_params().concurrency;
    let rows = &section.comparisons[from..];
    let names: Vec<&str> = rows.iter().map(|c| c.case.as_str()).collect();
    let mut expected = Vec::new();
    for what in [
        "client user CPU per request",
        "client system CPU per request",
        "voluntary context switches per request",
        "involuntary context switches per request",
    ] {
        for c in &concurrency {
            expected.push(format!("getMedia, concurrency {c}: {what}"));
        }
    }
    assert_eq!(names, expected);
    assert!(rows.iter().all(|c| c.bar == Bar::Info));
    for (i, c) in concurrency.iter().enumerate() {
        let cpu = section
            .comparison(&format!(
                "getMedia, concurrency {c}: client CPU per request"
            ))
            .unwrap();
        let split = rows[i].sdk.median + rows[concurrency.len() + i].sdk.median;
        // Two runs per figure in the smoke run: a median is their mean, which adds up.
        assert!(
            (split - cpu.sdk.median).abs() < 1e-6,
            "{split} vs {}",
            cpu.sdk.median
        );
    }
}

#[test]
fn async_requests_smoke() {
    let section = nx_bench::requests::bench_async(
        exe(),
        &request_params(),
        "cargo run --release -p nx-bench -- async",
    )
    .unwrap();
    // Throughput and CPU at two concurrencies, and two diagnostics at each, then user and
    // system CPU and both kinds of context switches at each; build and parse, each with its
    // floor, and the build floor's MD5 alone.
    check(&section, 16, 5);
    usage_rows_follow(&section, 8);
    // Issue 20's bars: throughput 0.95 of the raw client at concurrency 1, 0.90 above; the
    // CPU rows held to nothing; nx-async's own layer 0.97 of the by-hand client.
    assert_eq!(section.comparisons[0].bar, Bar::AtLeast(0.95));
    assert_eq!(section.comparisons[0].bar.met(0.96), Some(true));
    assert_eq!(section.comparisons[0].bar.met(0.94), Some(false));
    assert_eq!(section.comparisons[1].bar, Bar::AtLeast(0.90));
    assert_eq!(section.comparisons[2].bar, Bar::Info);
    assert_eq!(section.comparisons[2].bar.met(1.0), None);
    assert_eq!(section.comparisons[5].bar, Bar::AtLeast(0.97));
    // build_request at most 0.8 µs, its floor and the floor's MD5 shown; parse_response at
    // most 0.35 µs, its floor shown.
    let bars: Vec<Bar> = section.measures.iter().map(|m| m.bar).collect();
    assert_eq!(
        bars,
        [
            Bar::AtMost(0.8),
            Bar::Info,
            Bar::Info,
            Bar::AtMost(0.35),
            Bar::Info
        ]
    );
    assert!(
        section.measures[2]
            .case
            .starts_with("the floor's MD5 alone")
    );
    assert!(section.measures[4].case.starts_with("floor under part 2"));
}

#[test]
fn blocking_requests_smoke() {
    let section = nx_bench::requests::bench_blocking(
        exe(),
        &request_params(),
        "cargo run --release -p nx-bench -- blocking",
    )
    .unwrap();
    // Throughput and CPU at two concurrencies, and four diagnostics at each (nx-protocol by
    // hand vs raw, nx-blocking vs by hand, two raw ureq variants), then user and system CPU
    // and both kinds of context switches at each; build and parse, each with its floor, and
    // the build floor's MD5 alone.
    check(&section, 20, 5);
    usage_rows_follow(&section, 12);
    assert!(
        section.comparisons[..2]
            .iter()
            .all(|c| c.bar == Bar::AtLeast(0.95))
    );
    // The by-hand rows, named as item 2's, hold no bar of their own (issue 20 has none for
    // nx-blocking's layer).
    assert!(section.comparisons[4].case.starts_with(
        "diagnostic: raw ureq + nx-protocol by hand (`build_request` and `parse_response` per call) vs raw ureq"
    ));
    assert!(
        section.comparisons[5]
            .case
            .starts_with("diagnostic: nx-blocking vs raw ureq + nx-protocol by hand")
    );
    assert!(section.comparisons[4..8].iter().all(|c| c.bar == Bar::Info));
    assert!(
        section
            .notes
            .iter()
            .any(|n| n.contains("blocking_by_hand_self_test"))
    );
}

#[test]
fn download_smoke() {
    let params = DownloadParams {
        runs: 1,
        sizes: vec![64 << 10, 1 << 20],
        timed_size: 1 << 20,
        dir: std::env::temp_dir(),
        server_workers: 1,
    };
    let section = nx_bench::transfer::bench_download(
        exe(),
        &params,
        "cargo run --release -p nx-bench -- download",
    )
    .unwrap();
    // Five comparisons (the hash-thread diagnostic included) and four RSS rows per size, and
    // the SHA-256 row.
    check(&section, 10, 9);
    for m in section
        .measures
        .iter()
        .filter(|m| m.case.starts_with("peak RSS"))
    {
        let mib = m.value.median;
        assert!((1.0..512.0).contains(&mib), "{}: {mib} MiB", m.case);
    }
}

#[test]
fn upload_smoke() {
    let params = UploadParams {
        runs: 1,
        size: 1 << 20,
        dir: std::env::temp_dir(),
        server_workers: 1,
    };
    let section = nx_bench::transfer::bench_upload(
        exe(),
        &params,
        "cargo run --release -p nx-bench -- upload",
    )
    .unwrap();
    check(&section, 2, 4);
}

#[test]
fn sandbox_smoke() {
    let params = SandboxParams {
        runs: 1,
        requests: 64,
        concurrency: 8,
        body_sizes: vec![1024, 64 * 1024],
        verifier_iters: 20,
    };
    let section =
        nx_bench::sandbox::bench(&params, "cargo run --release -p nx-bench -- sandbox").unwrap();
    // Three request rates, four verifier sizes, the growth row.
    check(&section, 0, 8);
    assert!(section.markdown().contains("verified requests/s"));
}

#[test]
fn peers_self_test() {
    // The hand-written clients sign what nx-protocol signs (3 inputs), each of the three
    // getMedia clients is answered by the strict sandbox, a wrong secret is refused there, and
    // the reqwest download verifies the media's SHA-256 and refuses a wrong one.
    let test = nx_bench::peers::self_test().unwrap();
    assert_eq!(test.signatures_compared, 3);
    assert_eq!(test.sandbox_calls, 3);
    assert_eq!(test.downloaded, 100_000);
    // The signer is not a constant: a byte of the body changes it.
    let sign = |body: &[u8]| nx_bench::hand::sign("k", "getMedia", "2", "1", body, "s");
    assert_ne!(sign(b"{}"), sign(b"{ }"));
    assert_ne!(sign(b""), sign(b"{}"));
}

#[test]
fn peers_async_smoke() {
    let section = nx_bench::peers::bench_async(
        exe(),
        &request_params(),
        "cargo run --release -p nx-bench -- peers-async",
    )
    .unwrap();
    // Throughput and CPU at two concurrencies, then user and system CPU and both kinds of
    // context switches.
    check(&section, 12, 0);
    usage_rows_follow(&section, 4);
    assert_eq!(section.comparisons[0].bar, Bar::AtLeast(1.0));
    assert_eq!(section.comparisons[2].bar, Bar::Info);
    assert!(
        section
            .markdown()
            .contains("reqwest + signing and parsing by hand")
    );
}

#[test]
fn peers_blocking_smoke() {
    let section = nx_bench::peers::bench_blocking(
        exe(),
        &request_params(),
        "cargo run --release -p nx-bench -- peers-blocking",
    )
    .unwrap();
    // Throughput and CPU at two concurrencies, and the `timeout_global` diagnostic at each,
    // then user and system CPU and both kinds of context switches.
    check(&section, 14, 0);
    usage_rows_follow(&section, 6);
    assert_eq!(section.comparisons[1].bar, Bar::AtLeast(1.0));
    assert!(section.comparisons[5].case.contains("timeout_global"));
}

#[test]
fn peers_download_smoke() {
    let params = PeersDownloadParams {
        runs: 1,
        size: 1 << 20,
        dir: std::env::temp_dir(),
        server_workers: 1,
    };
    // Every child verifies the SHA-256 and the length on disk, or the run fails.
    let section = nx_bench::peers::bench_download(
        exe(),
        &params,
        "cargo run --release -p nx-bench -- peers-download",
    )
    .unwrap();
    // Both SDKs (to a path and into a file) against reqwest, and against reqwest made durable;
    // a peak-RSS row per case.
    check(&section, 6, 6);
    assert_eq!(section.comparisons[0].bar, Bar::AtLeast(1.0));
    for m in &section.measures {
        let mib = m.value.median;
        assert!((1.0..512.0).contains(&mib), "{}: {mib} MiB", m.case);
    }
}
