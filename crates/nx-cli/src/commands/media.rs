//! `nxcloud media get | delete | upload | download | send`: NXCloud's WhatsApp media calls,
//! through `nx_blocking::Client`.

use std::path::Path;

use nx_blocking::{
    Client, DownloadOptions, MediaSource, MessageDetails, SendMedia, UploadSource, Verified,
};
use nx_protocol::wa::MediaKind;
use serde::Serialize;
use serde_json::json;

use crate::args::{DownloadArgs, GlobalArgs, MediaCommand, MediaRef, SendArgs, UploadArgs};
use crate::clients;
use crate::exit::CliError;
use crate::mime;
use crate::output::{self, Output};
use crate::progress::Bar;
use crate::terminal::shown;

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
        MediaCommand::Send(args) => send(global, args, out),
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
            shown(&info.mime_type),
            shown(&info.file_name),
            shown(info.url.expose())
        )
    })
}

fn delete(global: &GlobalArgs, args: &MediaRef, out: Output) -> Result<(), CliError> {
    let client = clients::nxcloud(global)?;
    client.delete_media(&args.phone, &args.id)?;
    out.result(&json!({ "id": args.id, "deleted": true }), |_| {
        format!("deleted {}", shown(&args.id))
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
    let checked = mime::upload_type(&args.file, args.mime.as_deref(), "--type")?;
    let client = clients::nxcloud(global)?;
    let uploaded =
        client.upload_media(&args.phone, checked.mime, UploadSource::path(&args.file))?;
    let value = Uploaded {
        id: &uploaded.id,
        mime_type: checked.mime,
        kind: checked.kind.to_string(),
        bytes: checked.len,
    };
    out.result(&value, |v| shown(v.id).to_string())
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

/// The optional parts of `nxcloud media send`'s message.
fn details(args: &SendArgs) -> MessageDetails {
    let mut details = MessageDetails::new();
    if let Some(caption) = &args.caption {
        details = details.caption(caption);
    }
    if let Some(filename) = &args.filename {
        details = details.filename(filename);
    }
    if let Some(id) = &args.message_id {
        details = details.message_id(id);
    }
    if let Some(url) = &args.dr_webhook {
        details = details.dr_webhook(url);
    }
    if let Some(appkey) = args.appkey.as_deref().filter(|k| !k.is_empty()) {
        details = details.appkey(appkey);
    }
    details
}

/// The kind of a `--link`'s file, from the extension of its path (the query is not looked at).
fn link_kind(link: &str) -> Option<MediaKind> {
    let path = link.parse::<http::Uri>().ok()?.path().to_owned();
    MediaKind::from_mime(mime::from_extension(Path::new(&path))?)
}

/// A step of `nxcloud media send`, shown on stderr (stdout has only the result).
fn step(out: Output, text: &str) {
    if !out.is_json() {
        output::note(text);
    }
}

fn send(global: &GlobalArgs, args: &SendArgs, out: Output) -> Result<(), CliError> {
    let details = details(args);
    let (phone, to) = (args.phone.as_str(), args.to.as_str());
    let given = args.kind.map(MediaKind::from);
    let mut media_id = None;
    if args.mime.is_some() && args.file.is_none() {
        return Err(CliError::usage(
            "--mime is the type of a FILE to upload; with --id or --link give --type",
        ));
    }
    let message = if let Some(file) = &args.file {
        // Refusals (type, size, leading bytes, the message's fields) come before any upload.
        let checked = mime::upload_type(file, args.mime.as_deref(), "--mime")?;
        if let Some(kind) = given.filter(|k| *k != checked.kind) {
            return Err(CliError::usage(format!(
                "--type {kind} does not match {}: it is {} ({})",
                file.display(),
                checked.mime,
                checked.kind
            )));
        }
        let client = clients::nxcloud(global)?;
        let send = SendMedia::for_upload(
            phone,
            to,
            checked.mime,
            details,
            client.config().appkey.as_deref(),
        )
        .map_err(nx_blocking::Error::from)?;
        step(
            out,
            &format!(
                "[1/2] uploading {} ({}, {} bytes)",
                file.display(),
                checked.mime,
                checked.len
            ),
        );
        let uploaded = client.upload_media(phone, checked.mime, UploadSource::path(file))?;
        step(
            out,
            &format!("      media id {}", output::printable(&uploaded.id)),
        );
        step(out, &format!("[2/2] sending it as {} to {to}", send.kind()));
        let sent = client
            .send_media(send.with_media(MediaSource::id(uploaded.id.clone())))
            .map_err(|e| {
                // The upload stays: say its id, so that nothing is lost (also with --json).
                let mut error = CliError::from(e);
                let kept = format!(
                    "the file stays uploaded as media id {}: send it with --id once you know this message did not go out",
                    output::printable(&uploaded.id)
                );
                error.hint = Some(match error.hint.take() {
                    Some(hint) => format!("{hint}; {kept}"),
                    None => kept,
                });
                error
            })?;
        media_id = Some(uploaded.id);
        sent
    } else if let Some(id) = &args.id {
        let client = clients::nxcloud(global)?;
        let kind = match given {
            Some(kind) => kind,
            None => id_kind(&client, phone, id, out)?,
        };
        client.send_media(
            SendMedia::new(phone, to, kind, MediaSource::id(id)).with_details(details),
        )?
    } else {
        let link = args.link.as_deref().unwrap_or_default();
        let kind = given.or_else(|| link_kind(link)).ok_or_else(|| {
            CliError::usage(
                "--type is required with --link: the link's file name has no extension of a media type",
            )
            .with_hint("pass --type image|video|audio|document|sticker")
        })?;
        let send = SendMedia::new(phone, to, kind, MediaSource::link(link)).with_details(details);
        clients::nxcloud(global)?.send_media(send)?
    };
    let value = match &media_id {
        Some(media_id) => json!({ "id": message.id, "media_id": media_id }),
        None => json!({ "id": message.id }),
    };
    out.result(&value, |_| output::printable(&message.id).into_owned())
}

/// The kind of an uploaded or inbound media file, asked with getMedia (for `--id` without
/// `--type`).
fn id_kind(client: &Client, phone: &str, id: &str, out: Output) -> Result<MediaKind, CliError> {
    let info = client.get_media(phone, id)?;
    let kind = MediaKind::from_mime(&info.mime_type).ok_or_else(|| {
        CliError::usage(format!(
            "media {id} is {}, which is not a type mt sends; pass --type",
            output::printable(&info.mime_type)
        ))
    })?;
    step(
        out,
        &format!(
            "media {id} is {} ({kind}, from getMedia)",
            output::printable(&info.mime_type)
        ),
    );
    Ok(kind)
}
