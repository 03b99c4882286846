//! Where a download's `-o` points, checked before any request:
//!
//! - `-o -`: standard output (the checks run as the bytes go; the report goes to stderr);
//! - a regular file, or a path that does not exist yet: the SDK writes a temporary file in a
//!   staging directory beside the target (fsync'd), which is renamed over the target only once
//!   every check has passed; a replaced file keeps its mode, a new one gets the mode the umask
//!   gives. The staging directory is removed on failure, on a panic and on SIGINT, SIGTERM or
//!   SIGHUP ([`crate::interrupt`]); a symbolic link to a file keeps pointing at the new file;
//! - a directory (or a path ending in `/`): the file is saved inside it under the server's file
//!   name made safe ([`safe_name`]), or a name made from the media id when that is unusable;
//! - anything else that exists (a character device such as a null device, a FIFO): written in
//!   place, since renaming a file over it would replace the device or pipe with a regular file
//!   (as root, `-o /dev/null` would otherwise turn the system's null device into a file). The
//!   user named it on purpose (a pipe to another program, a device), so it is served rather than
//!   refused; but bytes reach it before the checks end, so a failed check cannot take them back,
//!   and the report says so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::exit::CliError;
use crate::interrupt::Registered;
use crate::terminal::{self, shown};

/// The name the staged file has inside its staging directory.
const STAGED_NAME: &str = "download";
/// The longest file name (in bytes) [`safe_name`] keeps; most file systems allow 255.
const MAX_NAME: usize = 200;

/// `-o`, checked.
pub(crate) enum Planned {
    /// `-o -`.
    Stdout,
    /// An existing file that is not a regular file nor a directory.
    InPlace {
        /// The path.
        path: PathBuf,
        /// What it is ("a character device", "a FIFO", ...).
        what: &'static str,
    },
    /// A regular file or a new path.
    File {
        /// Where the file ends up (a symbolic link's target, resolved).
        path: PathBuf,
        /// The staging directory beside it.
        staging: Staging,
    },
    /// A directory: the file name comes from the server, or the id.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The staging directory inside it.
        staging: Staging,
    },
}

/// Where the bytes go, once the file name is known.
pub(crate) enum Destination {
    /// Standard output.
    Stdout,
    /// A device or FIFO, written in place.
    InPlace {
        /// The path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// A staged file renamed over `path` by [`Staging::commit`].
    Staged {
        /// The final path.
        path: PathBuf,
        /// The staging directory.
        staging: Staging,
    },
}

/// Checks `output` and prepares its staging directory, before any request is sent: a missing
/// parent directory, a path ending in `/` that is not a directory, or a directory that cannot be
/// written is refused here.
pub(crate) fn plan(output: &Path) -> Result<Planned, CliError> {
    if output.as_os_str() == "-" {
        return Ok(Planned::Stdout);
    }
    let shown_path = output.display().to_string();
    let ends_with_slash =
        shown_path.ends_with('/') || shown_path.ends_with(std::path::MAIN_SEPARATOR);
    match fs::metadata(output) {
        Ok(meta) if meta.is_dir() => Ok(Planned::Dir {
            dir: output.to_path_buf(),
            staging: Staging::create(output)?,
        }),
        Err(e) if ends_with_slash => Err(CliError::io(
            format!(
                "-o {}: a path ending in / must be an existing directory",
                shown(&shown_path)
            ),
            e,
        )),
        _ if ends_with_slash => Err(CliError::usage(format!(
            "-o {}: a path ending in / must be a directory",
            shown(&shown_path)
        ))),
        Ok(meta) if meta.is_file() => {
            // A symbolic link to a file: the file it points at is replaced, the link is kept.
            let path = if fs::symlink_metadata(output).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::canonicalize(output)
                    .map_err(|e| CliError::io(format!("resolving {}", shown(&shown_path)), e))?
            } else {
                output.to_path_buf()
            };
            let staging = Staging::create(parent_of(&path))?;
            Ok(Planned::File { path, staging })
        }
        Ok(meta) => Ok(Planned::InPlace {
            path: output.to_path_buf(),
            what: kind_of(&meta),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = parent_of(output);
            if !parent.is_dir() {
                return Err(CliError::usage(format!(
                    "-o {}: the directory {} does not exist",
                    shown(&shown_path),
                    shown(&parent.display().to_string())
                )));
            }
            Ok(Planned::File {
                path: output.to_path_buf(),
                staging: Staging::create(parent)?,
            })
        }
        Err(e) => Err(CliError::io(format!("-o {}", shown(&shown_path)), e)),
    }
}

impl Planned {
    /// Where the bytes go, with the server's `file_name` (if any) for a directory; `id` makes
    /// the fallback name.
    pub(crate) fn destination(self, file_name: Option<&str>, id: &str) -> Destination {
        match self {
            Planned::Stdout => Destination::Stdout,
            Planned::InPlace { path, what } => Destination::InPlace { path, what },
            Planned::File { path, staging } => Destination::Staged { path, staging },
            Planned::Dir { dir, staging } => {
                let name = file_name
                    .and_then(safe_name)
                    .or_else(|| safe_name(&format!("media-{id}")))
                    .unwrap_or_else(|| "media-download".to_owned());
                Destination::Staged {
                    path: dir.join(name),
                    staging,
                }
            }
        }
    }
}

impl Destination {
    /// How the report names it.
    pub(crate) fn shown(&self) -> String {
        match self {
            Destination::Stdout => "stdout".to_owned(),
            Destination::InPlace { path, .. } | Destination::Staged { path, .. } => {
                path.display().to_string()
            }
        }
    }

    /// `error` with a hint, for a failed check on a target written as the bytes arrived (stdout,
    /// a device, a FIFO): those bytes already went out and cannot be taken back.
    pub(crate) fn explain(&self, mut error: CliError) -> CliError {
        let written = match self {
            Destination::Stdout => "stdout",
            Destination::InPlace { what, .. } => what,
            Destination::Staged { .. } => return error,
        };
        if error.exit == crate::exit::Exit::Integrity {
            error.hint = Some(format!(
                "the bytes before the failed check already went to {written} (written in place): discard them"
            ));
        }
        error
    }

    /// A note for the report: what was not promised.
    pub(crate) fn note(&self) -> Option<String> {
        match self {
            Destination::InPlace { what, .. } => Some(format!(
                "{what}: written in place, so bytes reached it before the checks ended"
            )),
            _ => None,
        }
    }

    /// Where the SDK writes: a writer for stdout and in-place targets (opened here: no create,
    /// no truncate, since it is a device or a pipe; a FIFO's open waits for a reader), else the
    /// staged file's path.
    pub(crate) fn sink(&self) -> Result<Sink, CliError> {
        Ok(match self {
            Destination::Stdout => Sink::Writer(Box::new(std::io::stdout().lock())),
            Destination::InPlace { path, .. } => {
                let file = fs::OpenOptions::new().write(true).open(path).map_err(|e| {
                    CliError::io(format!("opening {}", shown(&path.display().to_string())), e)
                })?;
                Sink::Writer(Box::new(file))
            }
            Destination::Staged { staging, .. } => Sink::Path(staging.file()),
        })
    }
}

/// What the SDK's download call is given.
pub(crate) enum Sink {
    /// Written as the bytes arrive.
    Writer(Box<dyn Write>),
    /// Downloaded to this path (the SDK's temporary file and rename).
    Path(PathBuf),
}

/// A staging directory (`.nx-download-XXXXXX`) beside the target, removed when dropped or on a
/// signal.
pub(crate) struct Staging(Registered);

impl Staging {
    fn create(dir: &Path) -> Result<Self, CliError> {
        let temp = tempfile::Builder::new()
            .prefix(nx_protocol::download::TEMP_PREFIX)
            .tempdir_in(dir)
            .map_err(|e| {
                CliError::io(
                    format!(
                        "cannot write in {} (creating a staging directory there)",
                        shown(&dir.display().to_string())
                    ),
                    e,
                )
            })?;
        Ok(Self(Registered::new(temp)))
    }

    /// The path the SDK downloads to.
    pub(crate) fn file(&self) -> PathBuf {
        self.0.path().join(STAGED_NAME)
    }

    /// Moves the verified staged file to `target`: a file already there keeps its mode (the
    /// staged one was created with the mode the umask gives), then the rename, then the
    /// directory is synced so the rename survives a crash.
    pub(crate) fn commit(&self, target: &Path) -> Result<(), CliError> {
        let staged = self.file();
        let shown_target = target.display().to_string();
        if let Ok(meta) = fs::metadata(target)
            && meta.is_file()
        {
            fs::set_permissions(&staged, meta.permissions()).map_err(|e| {
                CliError::io(format!("keeping the mode of {}", shown(&shown_target)), e)
            })?;
        }
        fs::rename(&staged, target).map_err(|e| {
            CliError::io(
                format!("renaming the download to {}", shown(&shown_target)),
                e,
            )
        })?;
        #[cfg(unix)]
        if let Ok(dir) = fs::File::open(parent_of(target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a regular file"
}

/// A server's (or a webhook's) file name made safe to create in a directory: path separators
/// and characters unsafe on a terminal become `_`, leading dots and white space are dropped (no
/// hidden files, no `..`), at most 200 bytes are kept. `None` when nothing usable is left.
pub(crate) fn safe_name(name: &str) -> Option<String> {
    let replaced: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\') || terminal::is_unsafe(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim_start_matches(|c: char| c == '.' || c.is_whitespace());
    let trimmed = trimmed.trim_end();
    let mut end = trimmed.len().min(MAX_NAME);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let name = &trimmed[..end];
    (!name.is_empty() && name.chars().any(|c| c != '_')).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_made_safe() {
        assert_eq!(safe_name("photo.png").as_deref(), Some("photo.png"));
        assert_eq!(
            safe_name("../../etc/passwd").as_deref(),
            Some("_.._etc_passwd")
        );
        assert_eq!(safe_name(".bashrc").as_deref(), Some("bashrc"));
        assert_eq!(
            safe_name("a\u{1b}[2J\nb.jpg").as_deref(),
            Some("a_[2J_b.jpg")
        );
        assert_eq!(safe_name("c:\\x\\y.pdf").as_deref(), Some("c:_x_y.pdf"));
        for unusable in ["", ".", "..", " .. ", "/", "\0", "..//"] {
            assert_eq!(safe_name(unusable), None, "{unusable:?}");
        }
        let long = "é".repeat(300);
        let kept = safe_name(&long).unwrap();
        assert!(kept.len() <= MAX_NAME && kept.chars().all(|c| c == 'é'));
    }
}
