//! Media storage: every file lives on disk in a temporary directory the sandbox owns (removed
//! when the sandbox stops); only metadata is kept in memory. Uploads are written chunk by chunk
//! as they arrive, and downloads are streamed from the file, so a 100 MB file never sits in
//! memory whole.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nx_protocol::download::Sha256Digest;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::SandboxError;

/// The most media entries kept at once.
pub(crate) const MAX_ITEMS: usize = 100_000;

/// Who put a file there, which decides who sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// uploadMedia by the account bound to this phone: visible to NXCloud calls on that phone.
    NxUpload { phone: String },
    /// `POST /v1/media`: visible to On-Premises calls only.
    OnPremUpload,
    /// A customer's message to this merchant phone (inbound simulation): visible to NXCloud
    /// calls on that phone and to On-Premises calls.
    Inbound { phone: String },
}

#[derive(Debug)]
pub(crate) struct Media {
    pub(crate) id: String,
    /// The object-storage key of its download URL (not the id: URLs do not reveal ids).
    pub(crate) object_key: String,
    /// The WhatsApp message type (`image`, `voice`, ...): the kind's name, or `voice` for
    /// inbound voice notes.
    pub(crate) msg_type: String,
    pub(crate) mime: String,
    pub(crate) file_name: String,
    pub(crate) len: u64,
    pub(crate) sha256: Sha256Digest,
    pub(crate) path: PathBuf,
    pub(crate) origin: Origin,
}

impl Media {
    pub(crate) fn visible_to_phone(&self, phone: &str) -> bool {
        match &self.origin {
            Origin::NxUpload { phone: p } | Origin::Inbound { phone: p } => p == phone,
            Origin::OnPremUpload => false,
        }
    }

    pub(crate) fn visible_to_onprem(&self) -> bool {
        matches!(self.origin, Origin::OnPremUpload | Origin::Inbound { .. })
    }
}

struct Entry {
    media: Arc<Media>,
    /// In the local datastore (deleted inbound media stay known, for retry-download).
    present: bool,
    /// Inbound media that "WhatsApp's servers" no longer have (retry-download fails).
    expired: bool,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    by_key: HashMap<String, String>,
    /// Bytes of files on disk, plus bytes reserved by uploads in progress.
    used: u64,
}

/// Why a file could not be stored.
#[derive(Debug)]
pub(crate) enum StoreError {
    Full,
    Io(std::io::Error),
}

/// What the caller knows about a file it stores.
pub(crate) struct NewMedia {
    pub(crate) msg_type: String,
    pub(crate) mime: String,
    pub(crate) file_name: Option<String>,
    pub(crate) origin: Origin,
}

pub(crate) struct Store {
    dir: tempfile::TempDir,
    inner: Mutex<Inner>,
    max_bytes: u64,
    rng: Mutex<fastrand::Rng>,
}

impl Store {
    pub(crate) fn new(
        parent: Option<&std::path::Path>,
        max_bytes: u64,
        seed: u64,
    ) -> Result<Self, SandboxError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("nx-sandbox-");
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(SandboxError::io("creating the media directory"))?;
        Ok(Self {
            dir,
            inner: Mutex::new(Inner::default()),
            max_bytes,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// A new UUID-shaped (version 4) id.
    pub(crate) fn new_id(&self) -> String {
        let mut rng = crate::sync::lock(&self.rng);
        uuid_from(rng.u128(..))
    }

    fn new_hex(&self) -> String {
        let mut rng = crate::sync::lock(&self.rng);
        format!("{:032x}", rng.u128(..))
    }

    fn reserve(&self, n: u64) -> bool {
        let mut inner = self.lock();
        match inner.used.checked_add(n) {
            Some(total) if total <= self.max_bytes => {
                inner.used = total;
                true
            }
            _ => false,
        }
    }

    fn release(&self, n: u64) {
        let mut inner = self.lock();
        inner.used = inner.used.saturating_sub(n);
    }

    /// Starts writing a file.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<Pending, StoreError> {
        let path = self.dir.path().join(format!("{}.bin", self.new_hex()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(StoreError::Io)?;
        Ok(Pending {
            store: Arc::clone(self),
            path: Some(path),
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Stores bytes held in memory (the inbound simulation's).
    pub(crate) fn insert_bytes(
        &self,
        bytes: &[u8],
        new: NewMedia,
    ) -> Result<Arc<Media>, StoreError> {
        let len = bytes.len() as u64;
        if !self.reserve(len) {
            return Err(StoreError::Full);
        }
        let path = self.dir.path().join(format!("{}.bin", self.new_hex()));
        if let Err(e) = std::fs::write(&path, bytes) {
            let _ = std::fs::remove_file(&path);
            self.release(len);
            return Err(StoreError::Io(e));
        }
        let sha256 = Sha256Digest::from_bytes(Sha256::digest(bytes).into());
        self.commit(path, len, sha256, new)
    }

    fn commit(
        &self,
        path: PathBuf,
        len: u64,
        sha256: Sha256Digest,
        new: NewMedia,
    ) -> Result<Arc<Media>, StoreError> {
        let id = self.new_id();
        let object_key = self.new_hex();
        let file_name = new
            .file_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{id}.{}", extension(&new.mime)));
        let media = Arc::new(Media {
            id: id.clone(),
            object_key: object_key.clone(),
            msg_type: new.msg_type,
            mime: new.mime,
            file_name,
            len,
            sha256,
            path,
            origin: new.origin,
        });
        let mut inner = self.lock();
        if inner.by_id.len() >= MAX_ITEMS {
            inner.used = inner.used.saturating_sub(len);
            drop(inner);
            let _ = std::fs::remove_file(&media.path);
            return Err(StoreError::Full);
        }
        inner.by_key.insert(object_key, id.clone());
        inner.by_id.insert(
            id,
            Entry {
                media: Arc::clone(&media),
                present: true,
                expired: false,
            },
        );
        Ok(media)
    }

    /// A present media file by id.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Media>> {
        self.lock()
            .by_id
            .get(id)
            .filter(|e| e.present)
            .map(|e| Arc::clone(&e.media))
    }

    /// A present media file by object key.
    pub(crate) fn get_by_key(&self, key: &str) -> Option<Arc<Media>> {
        let inner = self.lock();
        let id = inner.by_key.get(key)?;
        inner
            .by_id
            .get(id)
            .filter(|e| e.present)
            .map(|e| Arc::clone(&e.media))
    }

    /// Deletes a present media file. Inbound media stay known (not present) with their bytes,
    /// so retry-download can restore them; other files are removed from disk.
    pub(crate) fn delete(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(id) else {
            return false;
        };
        if !entry.present {
            return false;
        }
        if matches!(entry.media.origin, Origin::Inbound { .. }) {
            entry.present = false;
            return true;
        }
        let Some(entry) = inner.by_id.remove(id) else {
            return false;
        };
        inner.by_key.remove(&entry.media.object_key);
        inner.used = inner.used.saturating_sub(entry.media.len);
        drop(inner);
        // An open download keeps reading the unlinked file (on Unix).
        let _ = std::fs::remove_file(&entry.media.path);
        true
    }

    /// An inbound media file, present or not, and whether WhatsApp's servers lost it.
    pub(crate) fn inbound(&self, id: &str) -> Option<(Arc<Media>, bool)> {
        self.lock()
            .by_id
            .get(id)
            .filter(|e| matches!(e.media.origin, Origin::Inbound { .. }))
            .map(|e| (Arc::clone(&e.media), e.expired))
    }

    /// Puts a deleted inbound file back into the datastore.
    pub(crate) fn restore(&self, id: &str) {
        if let Some(entry) = self.lock().by_id.get_mut(id) {
            entry.present = true;
        }
    }

    /// Marks an inbound file as gone from WhatsApp's servers; whether it was inbound media.
    pub(crate) fn expire(&self, id: &str) -> bool {
        match self.lock().by_id.get_mut(id) {
            Some(entry) if matches!(entry.media.origin, Origin::Inbound { .. }) => {
                entry.expired = true;
                true
            }
            _ => false,
        }
    }

    /// How many files are present.
    pub(crate) fn count(&self) -> usize {
        self.lock().by_id.values().filter(|e| e.present).count()
    }
}

/// A file being written. Dropped without [`Pending::finish`], it is removed.
pub(crate) struct Pending {
    store: Arc<Store>,
    path: Option<PathBuf>,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    len: u64,
}

impl Pending {
    /// Appends a chunk (space is reserved first).
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let n = chunk.len() as u64;
        if !self.store.reserve(n) {
            return Err(StoreError::Full);
        }
        self.len += n;
        let file = self.file.as_mut().ok_or(StoreError::Full)?;
        file.write_all(chunk).await.map_err(StoreError::Io)?;
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Closes the file and records it.
    pub(crate) async fn finish(mut self, new: NewMedia) -> Result<Arc<Media>, StoreError> {
        let mut file = self.file.take().ok_or(StoreError::Full)?;
        file.flush().await.map_err(StoreError::Io)?;
        drop(file);
        let path = self.path.take().ok_or(StoreError::Full)?;
        let len = std::mem::take(&mut self.len);
        let sha256 = Sha256Digest::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        self.store.commit(path, len, sha256, new)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.file.take();
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
        self.store.release(self.len);
    }
}

/// Formats 128 random bits as a version-4 UUID.
pub(crate) fn uuid_from(bits: u128) -> String {
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (bits >> 96) as u32,
        (bits >> 80) as u16,
        (bits >> 64) as u16,
        (bits >> 48) as u16,
        bits & 0xffff_ffff_ffff
    )
}

/// A file name extension for a MIME type (for media without a name).
fn extension(mime: &str) -> &'static str {
    let essence = mime.split(';').next().unwrap_or("").trim();
    let ext = [
        ("image/jpeg", "jpg"),
        ("image/png", "png"),
        ("image/webp", "webp"),
        ("audio/aac", "aac"),
        ("audio/mp4", "m4a"),
        ("audio/mpeg", "mp3"),
        ("audio/amr", "amr"),
        ("audio/ogg", "ogg"),
        ("video/mp4", "mp4"),
        ("video/3gp", "3gp"),
        ("text/plain", "txt"),
        ("application/pdf", "pdf"),
    ]
    .into_iter()
    .find(|(m, _)| m.eq_ignore_ascii_case(essence));
    match (ext, crate::media_table::essence(essence)) {
        (Some((_, ext)), _) => ext,
        (None, Some(kind)) if kind.name == "document" => "doc",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        for bits in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef] {
            let id = uuid_from(bits);
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[tokio::test]
    async fn store_delete_restore_and_quota() {
        let store = Arc::new(Store::new(None, 10, 1).unwrap());
        let inbound = store
            .insert_bytes(
                b"hello",
                NewMedia {
                    msg_type: "image".into(),
                    mime: "image/jpeg".into(),
                    file_name: None,
                    origin: Origin::Inbound {
                        phone: "123456".into(),
                    },
                },
            )
            .unwrap();
        assert!(inbound.file_name.ends_with(".jpg"));
        assert!(store.delete(&inbound.id));
        assert!(store.get(&inbound.id).is_none());
        assert!(store.inbound(&inbound.id).is_some());
        store.restore(&inbound.id);
        assert!(store.get_by_key(&inbound.object_key).is_some());

        let mut pending = store.begin().await.unwrap();
        pending.write(b"12345").await.unwrap();
        assert!(matches!(pending.write(b"6").await, Err(StoreError::Full)));
        drop(pending);
        let mut pending = store.begin().await.unwrap();
        pending.write(b"abc").await.unwrap();
        let media = pending
            .finish(NewMedia {
                msg_type: "document".into(),
                mime: "text/plain".into(),
                file_name: Some("a.txt".into()),
                origin: Origin::OnPremUpload,
            })
            .await
            .unwrap();
        assert_eq!(media.sha256, Sha256Digest::of(b"abc"));
        assert_eq!(std::fs::read(&media.path).unwrap(), b"abc");
        assert!(store.delete(&media.id));
        assert!(!media.path.exists());
        assert!(!store.delete(&media.id));
        assert_eq!(store.count(), 1);
    }
}
