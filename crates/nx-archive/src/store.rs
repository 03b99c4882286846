//! The destination: a local directory or an S3 bucket, through `object_store`. An object
//! becomes visible at its key only once its bytes were verified: a local file is written beside
//! its place and renamed (and synced) on commit; an S3 object is a multipart upload completed
//! on commit (or one PUT, for files smaller than a part), aborted otherwise.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Bytes buffered per upload before it turns multipart, and the size of each part (S3's
/// minimum part size is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once. With [`PART_SIZE`], an upload holds at most
/// `PART_SIZE * (UPLOAD_CONCURRENCY + 1)` bytes, whatever the file's size.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// Where the archive goes, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// `s3://bucket/prefix`: S3 or an S3-compatible store, configured from `AWS_*` variables.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

impl FromStr for Destination {
    type Err = StoreError;

    /// `s3://bucket[/prefix]`, or a directory path. Other URL schemes are refused rather than
    /// taken for a directory named `gs:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::Config(format!(
                    "`{}` names no bucket: use s3://bucket/prefix",
                    s.escape_debug()
                )));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(StoreError::Config(format!(
                "`{}://` destinations are not supported: use a directory or s3://bucket/prefix",
                scheme.escape_debug()
            )));
        }
        if s.is_empty() {
            return Err(StoreError::Config("the destination is empty".into()));
        }
        Ok(Destination::Local(PathBuf::from(s)))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local(dir) => write!(f, "{}", dir.display()),
            Destination::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The destination or its settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// An operation of the store failed.
    #[error("{0}")]
    Store(#[from] object_store::Error),
    /// Local I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// An object store and the prefix the archive's keys go under.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    name: String,
}

impl Store {
    /// Opens a destination: a directory (created if missing), or S3 configured from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).
    pub fn open(destination: &Destination) -> Result<Store, StoreError> {
        Self::open_with(destination, [])
    }

    /// Like [`Store::open`], with S3 settings that take precedence over the environment's
    /// (ignored for a directory).
    pub fn open_with(
        destination: &Destination,
        s3_settings: impl IntoIterator<Item = (AmazonS3ConfigKey, String)>,
    ) -> Result<Store, StoreError> {
        match destination {
            Destination::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    context: format!("creating {}", dir.display()),
                    source,
                })?;
                let local = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
                Ok(Self::new(Arc::new(local), Path::default(), destination))
            }
            Destination::S3 { bucket, prefix } => {
                // reqwest's TLS takes the process's default rustls provider: ring, the one
                // provider this workspace builds (an error only means one is installed).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in s3_settings {
                    builder = builder.with_config(key, value);
                }
                let s3 = builder.build()?;
                Ok(Self::new(
                    Arc::new(s3),
                    Path::from(prefix.as_str()),
                    destination,
                ))
            }
        }
    }

    /// Any object store, with keys under `prefix`.
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: Path, name: impl fmt::Display) -> Store {
        Store {
            inner,
            prefix,
            name: name.to_string(),
        }
    }

    /// The object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The prefix keys go under.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The size of the object at `key`, or `None` if there is none.
    pub async fn size_of(&self, key: &Path) -> Result<Option<u64>, StoreError> {
        match self.inner.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A new upload to `key`, invisible until [`Upload::commit`].
    pub fn upload(&self, key: Path) -> Upload {
        let writer = BufWriter::with_capacity(Arc::clone(&self.inner), key.clone(), PART_SIZE)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        Upload {
            writer: Some(writer),
            key,
        }
    }

    /// A key for an upload whose digest is not known yet: `<prefix>/.staging/<random>`. It is
    /// renamed to its content address once verified.
    pub fn staging_key(&self) -> Path {
        self.prefix
            .clone()
            .join(".staging")
            .join(format!("{:032x}", fastrand::u128(..)))
    }

    /// Moves an object (a committed staging upload) to its key.
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        Ok(self.inner.rename(from, to).await?)
    }

    /// Deletes an object (a staging upload whose content is already stored).
    pub async fn delete(&self, key: &Path) -> Result<(), StoreError> {
        Ok(self.inner.delete(key).await?)
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An upload in progress: an [`AsyncWrite`] with bounded buffering (parts are sent while
/// bytes arrive), that becomes the object at its key only on [`Upload::commit`]. Dropped or
/// [`Upload::abort`]ed, it leaves nothing at the key.
pub struct Upload {
    writer: Option<BufWriter>,
    key: Path,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// The key it goes to.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// Completes the upload: the object appears at its key (durably, for a local directory).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut writer) = self.writer.take() else {
            return Err(StoreError::Io {
                context: format!("completing the upload of {}", self.key),
                source: closed(),
            });
        };
        writer.shutdown().await.map_err(|source| StoreError::Io {
            context: format!("completing the upload of {}", self.key),
            source,
        })
    }

    /// Abandons the upload, removing what was sent of it.
    pub async fn abort(mut self) -> Result<(), StoreError> {
        match self.writer.take() {
            Some(mut writer) => Ok(writer.abort().await?),
            None => Ok(()),
        }
    }

    fn writer(&mut self) -> std::io::Result<Pin<&mut BufWriter>> {
        self.writer.as_mut().map(Pin::new).ok_or_else(closed)
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("the upload was already completed or aborted")
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.writer() {
            Ok(writer) => writer.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Waits for parts in flight; never completes the upload (only [`Upload::commit`] does).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.writer() {
            Ok(writer) => writer.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Refused: only a verified upload may be completed, through [`Upload::commit`].
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(std::io::Error::other(
            "an upload is completed by commit, once verified",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            "s3://bucket/a/b/".parse::<Destination>().unwrap(),
            Destination::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            "s3://bucket".parse::<Destination>().unwrap().to_string(),
            "s3://bucket"
        );
        assert_eq!(
            "out/dir".parse::<Destination>().unwrap(),
            Destination::Local("out/dir".into())
        );
        for bad in ["s3://", "s3:///x", "gs://b/p", ""] {
            assert!(bad.parse::<Destination>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_upload_is_invisible_until_committed_and_gone_when_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Destination::Local(dir.path().join("out"))).unwrap();
        // Larger than a part, so it goes multipart.
        let bytes = vec![7u8; PART_SIZE + 1000];
        let key = Path::from("a/one.bin");
        let mut upload = store.upload(key.clone());
        upload.write_all(&bytes).await.unwrap();
        upload.flush().await.unwrap();
        assert!(upload.shutdown().await.is_err());
        assert_eq!(store.size_of(&key).await.unwrap(), None);
        upload.commit().await.unwrap();
        assert_eq!(store.size_of(&key).await.unwrap(), Some(bytes.len() as u64));

        let other = Path::from("a/two.bin");
        for len in [10, PART_SIZE + 10] {
            let mut upload = store.upload(other.clone());
            upload.write_all(&vec![1u8; len]).await.unwrap();
            upload.abort().await.unwrap();
            assert_eq!(store.size_of(&other).await.unwrap(), None);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["one.bin"], "no staging file is left");
    }
}
