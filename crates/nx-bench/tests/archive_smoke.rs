//! A smoke run of `nx-bench archive` with tiny sizes, in a test binary of its own: its child
//! processes would disturb the timing ratios the other smoke tests check if they ran alongside.

use std::path::Path;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_nx-bench"))
}

/// The archive item needs the `nxcloud` binary, which `cargo test --workspace` builds beside
/// `nx-bench` (nx-cli's tests need it). Run alone (`cargo test -p nx-bench`) without it, the
/// test says so and passes, except under CI.
#[test]
fn archive_smoke() {
    let nxcloud = exe().with_file_name(format!("nxcloud{}", std::env::consts::EXE_SUFFIX));
    if !nxcloud.is_file() {
        assert!(
            std::env::var("CI").is_err(),
            "no nxcloud binary at {}",
            nxcloud.display()
        );
        eprintln!(
            "SKIPPED archive_smoke: build nx-cli first (no {})",
            nxcloud.display()
        );
        return;
    }
    let mut params = nx_bench::archive::ArchiveParams::new(nxcloud);
    params.small = 4;
    params.large = 1;
    params.large_size = 2 << 20;
    params.s3 = false;
    let report = nx_bench::archive::bench(&params, "nx-bench archive").unwrap();
    // A loop and an archive row per set.
    assert_eq!(report.rows.len(), 6, "{}", report.markdown);
    for row in &report.rows {
        assert!(
            row.files_per_s.is_finite() && row.files_per_s > 0.0,
            "{row:?}"
        );
        assert!(row.mib_per_s.is_finite() && row.mib_per_s > 0.0, "{row:?}");
        assert!((1.0..512.0).contains(&row.peak_rss_mib), "{row:?}");
        let line = format!("| {} | {} |", row.set, row.case);
        assert!(
            report.markdown.contains(&line),
            "{line}\n{}",
            report.markdown
        );
    }
    assert!(
        report
            .markdown
            .contains("full-size over quarter-size files")
    );
}
