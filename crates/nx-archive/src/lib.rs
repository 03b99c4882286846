//! Bulk archive of WhatsApp media: every file out of NXCloud or an On-Premises installation,
//! verified, stored durably under its content address in a directory or an S3 bucket, and
//! recorded in a manifest that makes a run resumable.
//!
//! ```text
//! source lines ──> Items ──> N workers: decide ─> fetch ─> verify ─> store ─> record ─> delete
//!  (webhooks,      (each id      (plan)     (nx-async)  (SHA-256)  (object_store)  (manifest)
//!   ids, notes)     once)
//! ```
//!
//! - [`Source`] reads NXCloud inbound webhook bodies (one JSON document per line) or
//!   On-Premises ids, notifications and inbound webhooks into [`Item`]s.
//! - [`decide`], [`retry_delay`], [`may_delete`] and [`Shard`] are the decisions, as plain
//!   functions.
//! - [`Store`] is the destination: keys are `<prefix>/<sha256 hex>.<extension>` ([`object_key`]),
//!   so the same bytes are never stored twice; an object becomes visible only once verified.
//! - [`Manifest`] is the JSON-lines record; each row is synced before the next step (a delete
//!   happens only after the row saying "stored" is on disk).
//! - [`Archive`] runs it all.
//!
//! The crate README's example runs an archive of NXCloud webhooks into a directory.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod key;
mod manifest;
mod plan;
mod run;
mod shard;
mod source;
mod store;

pub use api::Api;
pub use key::{extension, object_key};
pub use manifest::{Failure, FailureKind, Manifest, ManifestError, Previous, Row, Status};
pub use plan::{Action, DEFAULT_MAX_ATTEMPTS, decide, failure_of, may_delete, retry_delay};
pub use run::{Archive, ItemReport, Observer, Options, Outcome, Summary};
pub use shard::{Shard, ShardError, shard_of};
pub use source::{Item, LineError, Source, SourceKind, parse_line};
pub use store::{Destination, PART_SIZE, Store, StoreError, UPLOAD_CONCURRENCY, Upload};

pub use object_store;

/// The crate's README, whose example `cargo test` compiles like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
