//! Everything the CLI reads is capped: a body to sign, a webhook body, an upload source of
//! unknown size (a FIFO, a device, stdin). An endless source (a pipe that never closes) stops at
//! the cap with a clear error instead of filling memory.

use std::io::Read;
use std::path::Path;

use crate::exit::CliError;
use crate::terminal::shown;

/// The cap of a JSON document the CLI reads (a body to sign, a webhook body): far above any
/// real one, far below what would hurt.
pub(crate) const MAX_JSON: u64 = 16 * 1024 * 1024;

/// How a source is named in messages: `stdin` for `-`, else its path (escaped).
pub(crate) fn name_of(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        shown(&path.display().to_string()).to_string()
    }
}

/// Reads `path` (`-`: stdin) whole, refusing it (a usage error) once it passes `cap` bytes;
/// `what` says what it should be ("a webhook body is a small JSON document").
pub(crate) fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, CliError> {
    let name = name_of(path);
    if path.as_os_str() == "-" {
        return read_capped_from(std::io::stdin().lock(), cap, &name, what);
    }
    let file = std::fs::File::open(path).map_err(|e| CliError::io(format!("opening {name}"), e))?;
    read_capped_from(file, cap, &name, what)
}

/// [`read_capped`] from any reader: at most `cap + 1` bytes are read.
pub(crate) fn read_capped_from(
    reader: impl Read,
    cap: u64,
    name: &str,
    what: &str,
) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io(format!("reading {name}"), e))?;
    if bytes.len() as u64 > cap {
        return Err(CliError::usage(format!(
            "{name} is larger than {cap} bytes and was not read further; {what}"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_source_stops_at_the_cap() {
        let endless = std::io::repeat(b'x');
        let err = read_capped_from(endless, 1000, "stdin", "it should be small").unwrap_err();
        assert_eq!(err.exit.code(), 2);
        assert_eq!(
            err.message,
            "stdin is larger than 1000 bytes and was not read further; it should be small"
        );
        let ok = read_capped_from(&b"12345"[..], 5, "f", "").unwrap();
        assert_eq!(ok, b"12345");
    }
}
