//! Where results and errors go: results on stdout (text, or JSON with `--json`), errors on stderr
//! (one line and a hint, or one JSON line with `--json`).

use std::io::{self, Write};

use serde::Serialize;

use crate::exit::CliError;
use crate::terminal::shown;

/// How results are printed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    /// Text, or JSON when `json`.
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Prints `value` as one line of JSON on stdout.
    pub(crate) fn json(self, value: &impl Serialize) -> Result<(), CliError> {
        stdout_line(&json_text(value)?)
    }

    /// Prints the JSON `value` with `--json`, else the text `human` makes.
    pub(crate) fn result<T: Serialize>(
        self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        if self.json {
            self.json(value)
        } else {
            stdout_line(&human(value))
        }
    }

    /// Reports a failure on stderr.
    pub(crate) fn error(self, error: &CliError) {
        let mut stderr = io::stderr().lock();
        if self.json {
            let line = serde_json::json!({
                "error": {
                    "exit_code": error.exit.code(),
                    "kind": error.exit,
                    "message": error.message,
                    "hint": error.hint,
                    "api_code": error.api_code,
                    "http_status": error.http_status,
                }
            });
            // A `Value` always serializes.
            let line = crate::terminal::json_line(&line).unwrap_or_default();
            let _ = writeln!(stderr, "{line}");
        } else {
            // Messages quote servers and files: escaped, so each stays one line and no escape
            // sequence reaches the terminal (or forges a `hint:` line).
            let _ = writeln!(stderr, "error: {}", shown(&error.message));
            if let Some(hint) = &error.hint {
                let _ = writeln!(stderr, "hint: {}", shown(hint));
            }
        }
    }
}

/// `value` as one line of JSON, terminal-safe ([`crate::terminal::json_line`]).
pub(crate) fn json_text(value: &impl Serialize) -> Result<String, CliError> {
    crate::terminal::json_line(value)
        .map_err(|e| CliError::failure(format!("formatting JSON output: {e}")))
}

/// Writes `text` and a newline to stdout and flushes it.
pub(crate) fn stdout_line(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Writes `text` and a newline to stderr (for notes that are not results).
pub(crate) fn note(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}
