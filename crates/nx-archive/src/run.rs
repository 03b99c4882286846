//! The pipeline: items -> N concurrent workers (fetch, verify, store, record, delete) -> the
//! manifest. Every decision is one of [`crate::plan`]'s functions; this module only does the
//! I/O around them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nx_async::DownloadOptions;
use nx_protocol::download::Sha256Digest;
use object_store::path::Path;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::key::object_key;
use crate::manifest::{Failure, FailureKind, Manifest, ManifestError, Previous, Row, Status};
use crate::plan::{Action, DEFAULT_MAX_ATTEMPTS, decide, failure_of, may_delete, retry_delay};
use crate::shard::Shard;
use crate::source::Item;
use crate::store::{Store, StoreError};

/// How a run goes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Items in flight at once (at least 1).
    pub concurrency: usize,
    /// Delete each media from the API once its object is stored, verified and recorded.
    pub delete_after: bool,
    /// Only the items of this shard.
    pub shard: Option<Shard>,
    /// Transfer attempts per item and run (see [`crate::retry_delay`]).
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: 4,
            delete_after: false,
            shard: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl Options {
    /// `concurrency` items in flight.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Delete from the API after storing.
    pub fn delete_after(mut self, yes: bool) -> Self {
        self.delete_after = yes;
        self
    }

    /// Only this shard's items.
    pub fn shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// At most `n` transfer attempts per item (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// What became of one item in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fetched, verified and stored now.
    Stored,
    /// Its content was at its key already (stored by an earlier run, another worker or for
    /// another id with the same bytes): recorded without a transfer.
    AlreadyStored,
    /// The manifest says an earlier run stored (or deleted) it: nothing was done.
    Skipped,
    /// Stored (now or earlier) and then deleted from the API now.
    Deleted,
    /// It could not be stored, or deleting it failed: the row's `reason` says why.
    Failed,
}

/// One item's report: its outcome and its manifest row.
#[derive(Clone, Debug, Serialize)]
pub struct ItemReport {
    /// What happened in this run.
    pub outcome: Outcome,
    /// Whether bytes were fetched and stored in this run.
    #[serde(skip)]
    pub transferred: bool,
    /// The row (as recorded; for a skipped item, the earlier run's).
    #[serde(flatten)]
    pub row: Row,
}

/// Told about progress as the run goes (from the workers' tasks).
pub trait Observer: Send + Sync {
    /// `n` more bytes arrived.
    fn bytes(&self, n: u64) {
        let _ = n;
    }
    /// An item is done.
    fn finished(&self, report: &ItemReport) {
        let _ = report;
    }
}

impl Observer for () {}

/// The counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Items of this run (of its shard).
    pub total: u64,
    /// Stored now (fetched and verified).
    pub stored: u64,
    /// Recorded without a transfer: the content was at its key already.
    pub already_stored: u64,
    /// Skipped: stored (or deleted) by an earlier run, per the manifest.
    pub skipped: u64,
    /// Deleted from the API now.
    pub deleted: u64,
    /// Failed (to store, or to delete).
    pub failed: u64,
    /// Bytes stored now.
    pub bytes: u64,
    /// Items left to other shards.
    pub other_shards: u64,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
}

impl Summary {
    /// Whether every item is stored (or deleted after storing).
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    fn add(&mut self, report: &ItemReport) {
        if report.transferred {
            self.stored += 1;
            self.bytes += report.row.size.unwrap_or(0);
        }
        match report.outcome {
            Outcome::AlreadyStored => self.already_stored += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Stored => {}
        }
    }
}

/// An archive run: the API, the destination and the manifest.
pub struct Archive {
    shared: Arc<Shared>,
}

struct Shared {
    api: Api,
    store: Store,
    manifest: Manifest,
    previous: Previous,
    options: Options,
    observer: Arc<dyn Observer>,
    /// Set once the run is asked to stop ([`Archive::run_until`]).
    stop: watch::Sender<bool>,
}

/// How an attempt that stored nothing ended.
enum Attempt {
    /// It failed.
    Failed(Failure),
    /// The run was asked to stop.
    Stopped,
}

impl From<Failure> for Attempt {
    fn from(failure: Failure) -> Self {
        Attempt::Failed(failure)
    }
}

/// What a successful transfer (or a content-address hit) gives.
struct Stored {
    sha256: Sha256Digest,
    size: u64,
    mime_type: Option<String>,
    key: Path,
    transferred: bool,
}

fn storage(error: StoreError) -> Failure {
    Failure {
        kind: FailureKind::Storage,
        message: error.to_string(),
        http_status: None,
        code: None,
    }
}

impl Archive {
    /// A run fetching from `api` into `store`, recording in `manifest` (whose earlier rows
    /// are `previous`, as [`Manifest::open`] read them).
    pub fn new(api: Api, store: Store, manifest: Manifest, previous: Previous) -> Self {
        Self::with_options(
            api,
            store,
            manifest,
            previous,
            Options::default(),
            Arc::new(()),
        )
    }

    /// Like [`Archive::new`], with options and an observer of progress.
    pub fn with_options(
        api: Api,
        store: Store,
        manifest: Manifest,
        previous: Previous,
        options: Options,
        observer: Arc<dyn Observer>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                api,
                store,
                manifest,
                previous,
                options,
                observer,
                stop: watch::Sender::new(false),
            }),
        }
    }

    /// The items of `items` this run takes (its shard's).
    pub fn select(&self, items: Vec<Item>) -> (Vec<Item>, u64) {
        let shard = self.shared.options.shard;
        let before = items.len() as u64;
        let mine: Vec<Item> = items
            .into_iter()
            .filter(|item| shard.is_none_or(|s| s.contains(&item.id)))
            .collect();
        let others = before - mine.len() as u64;
        (mine, others)
    }

    /// Runs over `items` (the whole source: other shards' items are left out here), at most
    /// `concurrency` at a time, and rewrites the manifest with one row per id at the end. Fails
    /// only if the manifest cannot be written: then nothing more is fetched or deleted.
    pub async fn run(self, items: Vec<Item>) -> Result<Summary, ManifestError> {
        let stopped = self.run_until(items, std::future::pending()).await?;
        // A stop that never comes: the run ends only by running out of items.
        Ok(stopped.unwrap_or_default())
    }

    /// [`Archive::run`], stopped cleanly when `stop` completes (a signal, say): no new item
    /// starts, a transfer in flight is cut and its upload aborted (a local temporary file is
    /// removed, an S3 multipart upload aborted), and an item already verified is committed and
    /// recorded before the call returns, so the manifest says exactly what is stored. `None`
    /// when stopped (the manifest is not compacted then: a rerun reads it as it is and does
    /// what is left); else the summary, as [`Archive::run`].
    pub async fn run_until(
        self,
        items: Vec<Item>,
        stop: impl Future<Output = ()>,
    ) -> Result<Option<Summary>, ManifestError> {
        let started = Instant::now();
        let (items, other_shards) = self.select(items);
        let mut summary = Summary {
            total: items.len() as u64,
            other_shards,
            ..Summary::default()
        };
        let concurrency = self.shared.options.concurrency.max(1);
        let mut pending = items.into_iter();
        let mut workers = JoinSet::new();
        let mut stop = std::pin::pin!(stop);
        let mut stopping = false;
        loop {
            while !stopping && workers.len() < concurrency {
                let Some(item) = pending.next() else { break };
                let shared = Arc::clone(&self.shared);
                workers.spawn(async move { shared.process(item).await });
            }
            let done = tokio::select! {
                done = workers.join_next() => done,
                () = &mut stop, if !stopping => {
                    stopping = true;
                    self.shared.stop.send_replace(true);
                    continue;
                }
            };
            let Some(done) = done else {
                break;
            };
            match done {
                Ok(Ok(Some(report))) => {
                    summary.add(&report);
                    self.shared.observer.finished(&report);
                }
                Ok(Ok(None)) => {}
                Ok(Err(error)) => {
                    workers.abort_all();
                    return Err(error);
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        if stopping {
            return Ok(None);
        }
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        let manifest = self.shared.manifest.clone();
        tokio::task::spawn_blocking(move || manifest.compact())
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        Ok(Some(summary))
    }
}

impl Shared {
    /// Completes once the run is asked to stop.
    async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = stop.wait_for(|stop| *stop).await;
    }

    /// One item, to its report; `None` when the run was stopped before it was done (nothing
    /// of it was recorded or left visible).
    async fn process(&self, item: Item) -> Result<Option<ItemReport>, ManifestError> {
        if *self.stop.borrow() {
            return Ok(None);
        }
        let previous = self.previous.get(&item.id).cloned();
        match (
            decide(previous.as_ref(), self.options.delete_after),
            previous,
        ) {
            (Action::Skip, Some(row)) => Ok(Some(ItemReport {
                outcome: Outcome::Skipped,
                transferred: false,
                row,
            })),
            (Action::Delete, Some(row)) => {
                let key = Path::from(row.key.as_deref().unwrap_or_default());
                // The manifest says stored: delete only if the object is still there.
                match self.store.size_of(&key).await {
                    Ok(Some(_)) => self.delete(&item, row, false).await.map(Some),
                    Ok(None) => self.fetch(&item, Some(row)).await,
                    Err(e) => {
                        let mut row = row;
                        row.reason = Some(storage(e));
                        self.manifest.append(&row).await?;
                        Ok(Some(ItemReport {
                            outcome: Outcome::Failed,
                            transferred: false,
                            row,
                        }))
                    }
                }
            }
            // Fetch (decide skips or deletes only items that have a row).
            (_, previous) => self.fetch(&item, previous).await,
        }
    }

    /// Fetches, stores and records an item (and deletes it, if asked); `None` when stopped
    /// before its object was verified.
    async fn fetch(
        &self,
        item: &Item,
        previous: Option<Row>,
    ) -> Result<Option<ItemReport>, ManifestError> {
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match self.fetch_once(item).await {
                Err(Attempt::Stopped) => return Ok(None),
                Ok(stored) => break Ok(stored),
                Err(Attempt::Failed(failure)) => {
                    match retry_delay(&failure, attempts, self.options.max_attempts) {
                        Some(delay) => tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.stopped() => return Ok(None),
                        },
                        None => break Err(failure),
                    }
                }
            }
        };
        let prior = previous.as_ref().map_or(0, |r| r.attempts);
        let mut row = Row {
            id: item.id.clone(),
            line: item.line,
            status: Status::Failed,
            sha256: item.sha256.map(|d| d.to_string()),
            size: None,
            mime_type: item.mime_type.clone(),
            key: None,
            attempts: prior + attempts,
            reason: None,
        };
        let stored = match result {
            Err(failure) => {
                row.reason = Some(failure);
                self.manifest.append(&row).await?;
                return Ok(Some(ItemReport {
                    outcome: Outcome::Failed,
                    transferred: false,
                    row,
                }));
            }
            Ok(stored) => stored,
        };
        row.status = Status::Stored;
        row.sha256 = Some(stored.sha256.to_string());
        row.size = Some(stored.size);
        row.mime_type = stored.mime_type;
        row.key = Some(stored.key.to_string());
        // Durable before anything is deleted.
        self.manifest.append(&row).await?;
        if self.options.delete_after && may_delete(&row) {
            return self.delete(item, row, stored.transferred).await.map(Some);
        }
        Ok(Some(ItemReport {
            outcome: if stored.transferred {
                Outcome::Stored
            } else {
                Outcome::AlreadyStored
            },
            transferred: stored.transferred,
            row,
        }))
    }

    /// Deletes the media of a stored, recorded item from the API.
    async fn delete(
        &self,
        item: &Item,
        mut row: Row,
        transferred: bool,
    ) -> Result<ItemReport, ManifestError> {
        debug_assert!(may_delete(&row));
        let outcome = match self.api.delete(item).await {
            Err(error) if !self.api.is_gone(&error) => {
                let mut failure = failure_of(&error);
                failure.message = format!("stored, but deleting it failed: {}", failure.message);
                failure.kind = FailureKind::Delete;
                row.reason = Some(failure);
                Outcome::Failed
            }
            _ => {
                row.status = Status::Deleted;
                row.reason = None;
                Outcome::Deleted
            }
        };
        self.manifest.append(&row).await?;
        Ok(ItemReport {
            outcome,
            transferred,
            row,
        })
    }

    /// One attempt: look for the content at its key, else transfer into a fresh upload that
    /// is committed only once verified. A stop cuts the API's answer or the transfer (whose
    /// upload is then aborted: nothing of it is left); once the bytes are verified, the
    /// object is committed whatever comes, so that the caller records it.
    async fn fetch_once(&self, item: &Item) -> Result<Stored, Attempt> {
        let store = &self.store;
        let key_of = |sha: &Sha256Digest, mime: Option<&str>| object_key(store.prefix(), sha, mime);
        let known = |sha: Sha256Digest, mime: Option<String>, key: Path, size: u64| Stored {
            sha256: sha,
            size,
            mime_type: mime,
            key,
            transferred: false,
        };
        if let (Some(sha), Some(mime)) = (item.sha256, &item.mime_type) {
            let key = key_of(&sha, Some(mime));
            if let Some(size) = store.size_of(&key).await.map_err(storage)? {
                return Ok(known(sha, Some(mime.clone()), key, size));
            }
        }
        let prepared = tokio::select! {
            prepared = self.api.prepare(item) => prepared.map_err(|e| failure_of(&e))?,
            () = self.stopped() => return Err(Attempt::Stopped),
        };
        let mime = item
            .mime_type
            .clone()
            .or_else(|| prepared.mime_type().map(str::to_owned));
        // The key is known before the transfer when the digest and the type are: then the
        // upload goes to it directly. Otherwise to a staging key, renamed once verified.
        let direct = match (item.sha256, &mime) {
            (Some(sha), Some(m)) => Some(key_of(&sha, Some(m))),
            _ => None,
        };
        if item.mime_type.is_none()
            && let (Some(key), Some(sha)) = (&direct, item.sha256)
            && let Some(size) = store.size_of(key).await.map_err(storage)?
        {
            return Ok(known(sha, mime, key.clone(), size));
        }
        let target = direct.clone().unwrap_or_else(|| store.staging_key());
        let mut upload = store.upload(target.clone());
        let options = match item.sha256 {
            Some(digest) => DownloadOptions::new().sha256(digest),
            None => DownloadOptions::new().compute_sha256(),
        };
        let observer = Arc::clone(&self.observer);
        let seen = AtomicU64::new(0);
        let options = options.progress(move |done, _| {
            let before = seen.swap(done, Ordering::Relaxed);
            observer.bytes(done.saturating_sub(before));
        });
        let transferred = tokio::select! {
            transferred = self.api.transfer(&prepared, item, &mut upload, options) => transferred,
            () = self.stopped() => {
                let _ = upload.abort().await;
                return Err(Attempt::Stopped);
            }
        };
        let (verified, content_type) = match transferred {
            Ok(done) => done,
            Err(error) => {
                let _ = upload.abort().await;
                return Err(failure_of(&error).into());
            }
        };
        let Some(sha256) = verified.sha256 else {
            let _ = upload.abort().await;
            return Err(Failure {
                kind: FailureKind::Other,
                message: "the client reported no SHA-256 for the download".into(),
                http_status: None,
                code: None,
            }
            .into());
        };
        let mime = mime.or(content_type);
        let key = key_of(&sha256, mime.as_deref());
        let stored = Stored {
            sha256,
            size: verified.len,
            mime_type: mime,
            key: key.clone(),
            transferred: true,
        };
        if direct.as_ref() == Some(&key) {
            upload.commit().await.map_err(storage)?;
            return Ok(stored);
        }
        if store.size_of(&key).await.map_err(storage)?.is_some() {
            let _ = upload.abort().await;
            return Ok(Stored {
                transferred: false,
                ..stored
            });
        }
        upload.commit().await.map_err(storage)?;
        if let Err(e) = store.rename(&target, &key).await {
            let _ = store.delete(&target).await;
            return Err(storage(e).into());
        }
        Ok(stored)
    }
}
