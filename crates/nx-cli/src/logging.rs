//! `-v`: the SDK's tracing events, printed to stderr.
//!
//! What the libraries log carries no secret: the access secret never reaches a log, download URLs
//! are logged with their query replaced by `<redacted>`, and neither `sign` values nor tokens are
//! logged.

use tracing::level_filters::LevelFilter;

/// Installs a stderr subscriber for `verbosity` (`-v` debug, `-vv` and more trace); none at 0.
pub(crate) fn init(verbosity: u8) {
    let level = match verbosity {
        0 => return,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(true)
        .try_init();
}
