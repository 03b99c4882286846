//! Where a download's `-o` points, checked before any request:
//!
//! - `-o -`: standard output (the checks run as the bytes go; the report goes to stderr);
//! - a regular file, or a path that does not exist yet: the SDK writes a temporary file in a
//!   staging directory beside the target (fsync'd), which is renamed over the target only once
//!   every check has passed; a replaced file keeps its mode, a new one gets the mode the umask
//!   gives. The staging directory is removed on failure, on a panic and on SIGINT, SIGTERM or
//!   SIGHUP ([`crate::interrupt`]); a symbolic link to a file keeps pointing at the new file;
//! - a directory (or a path ending in `/`): the file is saved inside it under the server's file
//!   name made safe ([`safe_name`]), or a name made from the media id when that is unusable.
//!   A name the server chose never replaces what is there (a file, a link, a directory, or a
//!   name the file system takes for the same, such as one differing only by case on macOS):
//!   the file is linked in under the first free name of `NAME`, `STEM-1.EXT`, `STEM-2.EXT`...
//!   (a hard link, which fails rather than replace; then the staged name is removed);
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
    /// A staged file moved to `path` by [`Destination::commit`].
    Staged {
        /// The final path.
        path: PathBuf,
        /// The staging directory.
        staging: Staging,
        /// Whether a file at `path` is replaced (the user named it), or kept and another name
        /// taken (the server named it, in a directory).
        replace: bool,
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
            Planned::File { path, staging } => Destination::Staged {
                path,
                staging,
                replace: true,
            },
            Planned::Dir { dir, staging } => {
                let name = file_name
                    .and_then(safe_name)
                    .or_else(|| safe_name(&format!("media-{id}")))
                    .unwrap_or_else(|| "media-download".to_owned());
                Destination::Staged {
                    path: dir.join(name),
                    staging,
                    replace: false,
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

    /// Moves a verified staged file to its place (nothing to do for the other targets) and
    /// says where it went: a directory's file may have taken a free name beside the planned one.
    pub(crate) fn commit(&self) -> Result<String, CliError> {
        match self {
            Destination::Staged {
                path,
                staging,
                replace: true,
            } => staging.commit(path).map(|()| path.display().to_string()),
            Destination::Staged {
                path,
                staging,
                replace: false,
            } => staging
                .link_beside(path)
                .map(|stored| stored.display().to_string()),
            _ => Ok(self.shown()),
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
    fn commit(&self, target: &Path) -> Result<(), CliError> {
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
        sync_dir(parent_of(target));
        Ok(())
    }

    /// Links the verified staged file in at `planned`, or at the first free name beside it
    /// ([`free_names`]); never replaces anything. The staged name is removed with the staging
    /// directory. Where hard links are not supported, a name found free is renamed to (a
    /// window in which another process could create it remains there).
    fn link_beside(&self, planned: &Path) -> Result<PathBuf, CliError> {
        let staged = self.file();
        let dir = parent_of(planned);
        let name = planned
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let failed = |e: std::io::Error, at: &Path| {
            CliError::io(
                format!(
                    "saving the download as {}",
                    shown(&at.display().to_string())
                ),
                e,
            )
        };
        for candidate in free_names(&name).map(|n| dir.join(n)) {
            match fs::hard_link(&staged, &candidate) {
                Ok(()) => {
                    sync_dir(dir);
                    return Ok(candidate);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    if fs::symlink_metadata(&candidate).is_ok() {
                        continue;
                    }
                    fs::rename(&staged, &candidate).map_err(|r| {
                        failed(if r.kind() == e.kind() { e } else { r }, &candidate)
                    })?;
                    sync_dir(dir);
                    return Ok(candidate);
                }
            }
        }
        Err(CliError::failure(format!(
            "saving the download in {}: {} and the next {MAX_SUFFIX} names beside it are taken",
            shown(&dir.display().to_string()),
            shown(&name)
        )))
    }
}

/// How many numbered names [`free_names`] tries beside a taken one.
const MAX_SUFFIX: usize = 999;

/// `name`, then `STEM-1.EXT`, `STEM-2.EXT`, ... (`NAME-1` without an extension); each stays
/// within [`MAX_NAME`] bytes.
fn free_names(name: &str) -> impl Iterator<Item = String> + '_ {
    let (stem, ext) = split_extension(name);
    std::iter::once(name.to_owned()).chain((1..=MAX_SUFFIX).map(move |n| {
        let suffix = format!("-{n}{ext}");
        format!("{}{suffix}", cut(stem, MAX_NAME - suffix.len()))
    }))
}

/// `("photo", ".png")` of `photo.png`; an extension is at most 16 bytes, after a stem that is
/// not empty.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => name.split_at(dot),
        _ => (name, ""),
    }
}

/// The longest prefix of `text` of at most `max` bytes, cut on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Syncs a directory, so that a rename or link in it survives a crash.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
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

/// A server's (or a webhook's) file name made safe to create in a directory, on any system
/// the directory may be copied to: path separators, characters unsafe on a terminal (control,
/// bidirectional, zero-width) and those Windows refuses (`<>:"|?*`) become `_`; leading dots and
/// white space are dropped (no hidden files, no `..`), trailing dots and white space too
/// (Windows drops them); a name Windows reserves for a device (`CON`, `NUL`, `COM1`, `LPT1.txt`,
/// ...) gets a leading `_`; at most 200 bytes are kept, the extension kept when it is short.
/// `None` when nothing usable is left.
pub(crate) fn safe_name(name: &str) -> Option<String> {
    let replaced: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
                || terminal::is_unsafe(c)
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '_') {
        return None;
    }
    let name = if is_windows_device(trimmed) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    if name.len() <= MAX_NAME {
        return Some(name);
    }
    let (stem, ext) = split_extension(&name);
    Some(format!("{}{ext}", cut(stem, MAX_NAME - ext.len())))
}

/// Whether Windows takes `name` (whatever its extension) for a device: `CON`, `PRN`, `AUX`,
/// `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (also with the superscript digits), in any case.
fn is_windows_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or_default().trim_end();
    let upper = base.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest: Vec<char> = chars.collect();
    matches!(prefix.as_str(), "COM" | "LPT")
        && matches!(rest.as_slice(), [d] if d.is_ascii_digit() || matches!(d, '¹' | '²' | '³'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_names_give_numbered_ones_within_the_limit() {
        let names: Vec<String> = free_names("photo.png").take(3).collect();
        assert_eq!(names, ["photo.png", "photo-1.png", "photo-2.png"]);
        let names: Vec<String> = free_names("README").take(2).collect();
        assert_eq!(names, ["README", "README-1"]);
        assert_eq!(free_names(".x").nth(1).unwrap(), ".x-1");
        let long = format!("{}.pdf", "é".repeat(98));
        assert!(free_names(&long).all(|n| n.len() <= MAX_NAME && n.ends_with(".pdf")));
        assert_eq!(free_names("a").count(), MAX_SUFFIX + 1);
    }

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
        assert_eq!(safe_name("c:\\x\\y.pdf").as_deref(), Some("c__x_y.pdf"));
        for unusable in ["", ".", "..", " .. ", "/", "\0", "..//", "\u{202e}", "?*"] {
            assert_eq!(safe_name(unusable), None, "{unusable:?}");
        }
        let long = "é".repeat(300);
        let kept = safe_name(&long).unwrap();
        assert!(kept.len() <= MAX_NAME && kept.chars().all(|c| c == 'é'));
        // A long name keeps its extension.
        let kept = safe_name(&format!("{}.jpeg", "x".repeat(300))).unwrap();
        assert_eq!(kept, format!("{}.jpeg", "x".repeat(MAX_NAME - 5)));
        // What Windows would refuse or take for a device.
        for (given, made) in [
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("Com1.png", "_Com1.png"),
            ("lpt9", "_lpt9"),
            ("aux .pdf", "_aux .pdf"),
            ("console.png", "console.png"),
            ("com10.png", "com10.png"),
            ("a.png. . ", "a.png"),
            ("a<b>|\"c\".png", "a_b___c_.png"),
        ] {
            assert_eq!(safe_name(given).as_deref(), Some(made), "{given:?}");
        }
        // Invisible and reordering characters never make two names look alike.
        assert_eq!(
            safe_name("invoice\u{202e}fdp.exe").as_deref(),
            Some("invoice_fdp.exe")
        );
        assert_eq!(
            safe_name("a\u{200b}b\u{feff}.png").as_deref(),
            Some("a_b_.png")
        );
    }
}
