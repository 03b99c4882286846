//! `-v`: the SDK's tracing events, printed to stderr. `-v` shows the DEBUG events (each attempt,
//! its outcome, each download); `-vv` adds TRACE, each call's span opening and closing with its
//! duration (`time.busy`, `time.idle`), and the thread, file and line of every event.
//!
//! What the libraries log carries no secret: the access secret never reaches a log, download URLs
//! are logged with their query replaced by `<redacted>`, and neither `sign` values nor tokens are
//! logged. (No `log` logger is installed: ureq's own TRACE records would carry them.)
//!
//! The events quote servers (an error answer's message, Meta's error texts), so each one is
//! written through [`Escaped`]: one event stays one line, and no escape sequence in a server's
//! text reaches the terminal.

use std::io::{self, Write};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs a stderr subscriber for `verbosity` (`-v` debug, `-vv` and more trace); none at 0.
pub(crate) fn init(verbosity: u8) {
    let builder = tracing_subscriber::fmt()
        .with_writer(|| Escaped)
        .with_target(true);
    let _ = match verbosity {
        0 => return,
        1 => builder.with_max_level(LevelFilter::DEBUG).try_init(),
        _ => builder
            .with_max_level(LevelFilter::TRACE)
            .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
            .with_thread_names(true)
            .with_file(true)
            .with_line_number(true)
            .try_init(),
    };
}

/// stderr, with every character of an event that a terminal would act on escaped
/// ([`crate::terminal::escape`]) but the newline that ends it. The fmt layer writes each event
/// whole, in one call.
struct Escaped;

impl Write for Escaped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (event, end) = match text.strip_suffix('\n') {
            Some(event) => (event, "\n"),
            None => (&*text, ""),
        };
        let line = format!("{}{end}", crate::terminal::escape(event));
        // A closed stderr loses the log, never the command.
        let _ = io::stderr().lock().write_all(line.as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}
