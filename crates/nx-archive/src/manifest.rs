//! The manifest: a JSON-lines log of what became of each media id. Rows are appended and
//! synced one by one as items finish, so a run killed at any point loses nothing it stored; the
//! last row of an id is its state, and a finished run rewrites the file with one row per id.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// What became of a media id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its object is stored and was verified (length, SHA-256) before it became visible.
    Stored,
    /// It could not be stored: `reason` says why. A rerun tries it again.
    Failed,
    /// Stored, then deleted from the API (`--delete-after`).
    Deleted,
}

/// Why an item failed, by kind (a rerun retries every kind; the kinds say whether that helps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The API does not know the id (unknown, deleted, or not this merchant's).
    NotFound,
    /// The bytes failed a check: SHA-256 or length mismatch. Nothing was kept.
    Integrity,
    /// The file is larger than the configured maximum download size.
    TooLarge,
    /// The API answered another error.
    Api,
    /// Network trouble or a timeout, after the retries.
    Network,
    /// Refused before sending (an id or a phone the API cannot take).
    Input,
    /// The destination store failed.
    Storage,
    /// The object is stored, but deleting the media from the API failed.
    Delete,
    /// Anything else.
    Other,
}

/// A failure as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The error's message (never a secret or a download URL's query).
    pub message: String,
    /// The HTTP status, when a server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The NXCloud or Meta code, when the API answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

/// One manifest row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The media id.
    pub id: String,
    /// The source line the id was read from (1-based).
    pub line: u64,
    /// Its state.
    pub status: Status,
    /// The file's SHA-256 (hex), once known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Its size in bytes, once known.
    #[serde(default)]
    pub size: Option<u64>,
    /// Its MIME type, once known.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// The object's key in the destination, once stored.
    #[serde(default)]
    pub key: Option<String>,
    /// Transfer attempts so far, over every run.
    #[serde(default)]
    pub attempts: u32,
    /// Why it failed (or, when stored, why deleting it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Failure>,
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// File I/O.
    #[error("manifest {path}: {source}")]
    Io {
        /// The manifest.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line that is not a row, other than a torn last line.
    #[error("manifest {path}, line {line}: not a manifest row ({reason}); fix or remove the line")]
    Corrupt {
        /// The manifest.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The rows of an earlier run: the last row of each id.
#[derive(Clone, Debug, Default)]
pub struct Previous {
    rows: HashMap<String, Row>,
}

impl Previous {
    /// The last row of `id`.
    pub fn get(&self, id: &str) -> Option<&Row> {
        self.rows.get(id)
    }

    /// How many ids have a row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every id's last row, ordered by source line, then id.
    pub fn rows(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.values().collect();
        rows.sort_by(|a, b| (a.line, &a.id).cmp(&(b.line, &b.id)));
        rows
    }

    fn record(&mut self, row: Row) {
        self.rows.insert(row.id.clone(), row);
    }
}

/// Reads manifest text: the last row of each id, and the length of the part made of whole
/// lines (a last line without its newline is a row a kill tore, and is ignored).
pub(crate) fn parse(path: &Path, text: &[u8]) -> Result<(Previous, usize), ManifestError> {
    let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut previous = Previous::default();
    for (index, line) in text[..whole].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row: Row = serde_json::from_slice(line).map_err(|e| ManifestError::Corrupt {
            path: path.to_owned(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        previous.record(row);
    }
    Ok((previous, whole))
}

/// An open manifest, appended to row by row.
#[derive(Clone, Debug)]
pub struct Manifest {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl Manifest {
    /// Opens (or creates) the manifest at `path` and reads the rows already there. A torn last
    /// line is cut off, so the next row starts on a line of its own.
    pub fn open(path: impl Into<PathBuf>) -> Result<(Manifest, Previous), ManifestError> {
        let path = path.into();
        let io = |source| ManifestError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let text = std::fs::read(&path).map_err(io)?;
        let (previous, whole) = parse(&path, &text)?;
        if whole < text.len() {
            file.set_len(whole as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        Ok((
            Manifest {
                path,
                file: Arc::new(Mutex::new(file)),
            },
            previous,
        ))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `row` and syncs it to disk before returning: once this returns, the row
    /// survives a kill or a power cut.
    pub async fn append(&self, row: &Row) -> Result<(), ManifestError> {
        let mut line = serde_json::to_vec(row).map_err(|e| ManifestError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let file = Arc::clone(&self.file);
        let result = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|poison| poison.into_inner());
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        result.map_err(|source| ManifestError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Rewrites the manifest with one row per id (the last), through a temporary file renamed
    /// over it, so a kill during the rewrite leaves the old file whole.
    pub fn compact(self) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: self.path.clone(),
            source,
        };
        let text = std::fs::read(&self.path).map_err(io)?;
        let (previous, _) = parse(&self.path, &text)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".manifest-")
            .tempfile_in(&dir)
            .map_err(io)?;
        for row in previous.rows() {
            let mut line = serde_json::to_vec(row).map_err(|e| io(std::io::Error::other(e)))?;
            line.push(b'\n');
            temp.write_all(&line).map_err(io)?;
        }
        temp.as_file().sync_all().map_err(io)?;
        temp.persist(&self.path).map_err(|e| io(e.error))?;
        sync_dir(&dir).map_err(io)
    }
}

/// Syncs a directory, so a rename in it survives a power cut (Unix; elsewhere a no-op).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, line: u64, status: Status) -> Row {
        Row {
            id: id.into(),
            line,
            status,
            sha256: None,
            size: None,
            mime_type: None,
            key: None,
            attempts: 1,
            reason: None,
        }
    }

    #[tokio::test]
    async fn rows_survive_reopening_and_a_torn_last_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/manifest.jsonl");
        let (manifest, previous) = Manifest::open(&path).unwrap();
        assert!(previous.is_empty());
        manifest.append(&row("a", 1, Status::Failed)).await.unwrap();
        manifest.append(&row("b", 2, Status::Stored)).await.unwrap();
        manifest.append(&row("a", 1, Status::Stored)).await.unwrap();
        drop(manifest);
        // A kill in the middle of a row.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"id":"c","line":3,"sta"#).unwrap();
        drop(file);

        let (manifest, previous) = Manifest::open(&path).unwrap();
        assert_eq!(previous.len(), 2);
        assert_eq!(previous.get("a").unwrap().status, Status::Stored);
        assert!(previous.get("c").is_none());
        manifest.append(&row("c", 3, Status::Stored)).await.unwrap();
        manifest.compact().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Row>(l).unwrap().id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn a_broken_line_in_the_middle_is_an_error_naming_it() {
        let text = b"{\"id\":\"a\",\"line\":1,\"status\":\"stored\"}\nnot a row\n{\"id\":\"b\",\"line\":2,\"status\":\"failed\"}\n";
        let err = parse(Path::new("m.jsonl"), text).unwrap_err();
        assert!(
            matches!(err, ManifestError::Corrupt { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn rows_serialize_with_typed_reasons() {
        let mut failed = row("x", 4, Status::Failed);
        failed.reason = Some(Failure {
            kind: FailureKind::NotFound,
            message: "gone".into(),
            http_status: Some(404),
            code: None,
        });
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            text,
            r#"{"id":"x","line":4,"status":"failed","sha256":null,"size":null,"mime_type":null,"key":null,"attempts":1,"reason":{"kind":"not_found","message":"gone","http_status":404}}"#
        );
        assert_eq!(serde_json::from_str::<Row>(&text).unwrap(), failed);
    }
}
