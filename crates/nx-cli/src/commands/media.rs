//! `nxcloud media get | delete | upload | download`: NXCloud's WhatsApp media calls, through
//! `nx_blocking::Client`.

use std::path::Path;

use nx_blocking::{DownloadOptions, UploadSource, Verified};
use serde::Serialize;
use serde_json::json;

use crate::args::{DownloadArgs, GlobalArgs, MediaCommand, MediaRef, UploadArgs};
use crate::clients;
use crate::exit::CliError;
use crate::mime;
use crate::output::Output;
use crate::progress::Bar;

/// Runs `nxcloud media ...`.
pub(crate) fn run(
    global: &GlobalArgs,
    command: &MediaCommand,
    out: Output,
) -> Result<(), CliError> {
    match command {
        MediaCommand::Get(args) => get(global, args, out),
        MediaCommand::Delete(args) => delete(global, args, out),
        MediaCommand::Upload(args) => upload(global, args, out),
        MediaCommand::Download(args) => download(global, args, out),
    }
}

fn get(global: &GlobalArgs, args: &MediaRef, out: Output) -> Result<(), CliError> {
    let client = clients::nxcloud(global)?;
    let info = client.get_media(&args.phone, &args.id)?;
    // The full URL is the point of this command; it grants access until it expires.
    let value = json!({
        "mime_type": info.mime_type,
        "file_name": info.file_name,
        "url": info.url.expose(),
        "expires_at": info.url.expires_at(),
    });
    out.result(&value, |_| {
        let expires = info
            .url
            .expires_at()
            .map_or_else(|| "unknown".to_owned(), |at| format!("{at} (Unix seconds)"));
        format!(
            "mime_type: {}\nfile_name: {}\nexpires:   {expires}\nurl:       {}",
            info.mime_type,
            info.file_name,
            info.url.expose()
        )
    })
}

fn delete(global: &GlobalArgs, args: &MediaRef, out: Output) -> Result<(), CliError> {
    let client = clients::nxcloud(global)?;
    client.delete_media(&args.phone, &args.id)?;
    out.result(&json!({ "id": args.id, "deleted": true }), |_| {
        format!("deleted {}", args.id)
    })
}

#[derive(Serialize)]
struct Uploaded<'a> {
    id: &'a str,
    mime_type: &'a str,
    kind: String,
    bytes: u64,
}

fn upload(global: &GlobalArgs, args: &UploadArgs, out: Output) -> Result<(), CliError> {
    // Refusals (type, size, leading bytes) come before connecting to anything.
    let checked = mime::upload_type(&args.file, args.mime.as_deref())?;
    let client = clients::nxcloud(global)?;
    let uploaded =
        client.upload_media(&args.phone, checked.mime, UploadSource::path(&args.file))?;
    let value = Uploaded {
        id: &uploaded.id,
        mime_type: checked.mime,
        kind: checked.kind.to_string(),
        bytes: checked.len,
    };
    out.result(&value, |v| v.id.to_owned())
}

/// What a verified download reports.
#[derive(Serialize)]
pub(crate) struct Saved<'a> {
    /// The media id.
    pub(crate) id: &'a str,
    /// Where it was stored.
    pub(crate) path: String,
    /// Its size.
    pub(crate) bytes: u64,
    /// Its SHA-256 when one was checked.
    pub(crate) sha256: Option<String>,
    /// Whether a SHA-256 was checked.
    pub(crate) sha256_verified: bool,
}

impl<'a> Saved<'a> {
    /// The report of `verified`, stored at `path`.
    pub(crate) fn new(id: &'a str, path: &Path, verified: &Verified) -> Self {
        Self {
            id,
            path: path.display().to_string(),
            bytes: verified.len,
            sha256: verified.sha256.map(|d| d.to_string()),
            sha256_verified: verified.sha256.is_some(),
        }
    }

    /// One line for people.
    pub(crate) fn human(&self) -> String {
        match &self.sha256 {
            Some(sha) => format!(
                "saved {} bytes to {} (sha256 {sha} verified)",
                self.bytes, self.path
            ),
            None => format!("saved {} bytes to {}", self.bytes, self.path),
        }
    }
}

fn download(global: &GlobalArgs, args: &DownloadArgs, out: Output) -> Result<(), CliError> {
    let client = clients::nxcloud(global)?;
    let mut options = DownloadOptions::new();
    if let Some(digest) = args.sha256 {
        options = options.sha256(digest);
    }
    let bar = Bar::for_stderr();
    let result =
        client.download_media_to_path(&args.phone, &args.id, &args.output, bar.attach(options));
    bar.finish();
    let verified = result?;
    let saved = Saved::new(&args.id, &args.output, &verified);
    out.result(&saved, Saved::human)
}
