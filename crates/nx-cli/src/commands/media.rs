//! `nxcloud media get | delete | upload | download | send`: NXCloud's WhatsApp media calls,
//! through `nx_blocking::Client`.

use std::io::Write;
use std::path::Path;

use nx_blocking::{Client, DownloadOptions, MediaSource, MessageDetails, SendMedia, Verified};
use nx_protocol::download::Sha256Digest;
use nx_protocol::wa::MediaKind;
use serde::Serialize;
use serde_json::json;

use crate::args::{DownloadArgs, GlobalArgs, MediaCommand, MediaRef, SendArgs, UploadArgs};
use crate::clients;
use crate::exit::CliError;
use crate::interrupt::{self, Underway};
use crate::mime;
use crate::output::{self, Output};
use crate::progress::Bar;
use crate::target::{self, Destination, Sink};
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
        MediaCommand::Archive(args) => super::archive::media(global, args, out),
    }
}

fn get(global: &GlobalArgs, args: &MediaRef, out: Output) -> Result<(), CliError> {
    let client = clients::nxcloud(global)?;
    let info = client.get_media(&args.phone, &args.id)?;
    // The full URL is the point of this command; it grants access until it expires.
    let value = json!({
        "mime_type": info.mime_type(),
        "file_name": info.file_name(),
        "url": info.url().expose(),
        "expires_at": info.url().expires_at(),
    });
    out.result(&value, |_| {
        let expires = info
            .url()
            .expires_at()
            .map_or_else(|| "unknown".to_owned(), |at| format!("{at} (Unix seconds)"));
        format!(
            "mime_type: {}\nfile_name: {}\nexpires:   {expires}\nurl:       {}",
            shown(info.mime_type()),
            shown(info.file_name()),
            // Whole, however long: the URL is this command's result.
            crate::terminal::escape(info.url().expose())
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
    let mut checked = mime::upload_type(&args.file, args.mime.as_deref(), "--type")?;
    let client = clients::nxcloud(global)?;
    interrupt::install(out, Underway::Upload)?;
    let bar = Bar::for_stderr();
    let source = bar.attach_upload(checked.source(&args.file));
    let uploaded = client.upload_media(&args.phone, checked.mime, source);
    bar.finish();
    let uploaded = uploaded?;
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
    /// Where it was stored (`stdout` for `-o -`).
    pub(crate) path: String,
    /// Its size.
    pub(crate) bytes: u64,
    /// The SHA-256 computed over the bytes received.
    pub(crate) sha256: Option<String>,
    /// Whether it was checked against `--sha256`.
    pub(crate) sha256_verified: bool,
    /// What was not promised (a device or FIFO written in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    /// The MIME type the server sent (On-Premises retrieves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<&'a str>,
}

impl<'a> Saved<'a> {
    /// The report of `verified`, stored at `destination`.
    pub(crate) fn new(
        id: &'a str,
        destination: &Destination,
        verified: &Verified,
        expected: bool,
    ) -> Self {
        Self {
            id,
            path: destination.shown(),
            bytes: verified.len,
            sha256: verified.sha256.map(|d| d.to_string()),
            sha256_verified: expected && verified.sha256.is_some(),
            note: destination.note(),
            mime_type: None,
        }
    }

    /// One line for people.
    pub(crate) fn human(&self) -> String {
        let mut line = format!("saved {} bytes to {}", self.bytes, shown(&self.path));
        match (&self.sha256, self.sha256_verified) {
            (Some(sha), true) => line.push_str(&format!(" (sha256 {sha} verified)")),
            (Some(sha), false) => line.push_str(&format!(" (sha256 {sha})")),
            (None, _) => {}
        }
        if let Some(mime) = self.mime_type {
            line.push_str(&format!(" ({})", shown(mime)));
        }
        if let Some(note) = &self.note {
            line.push_str(&format!("; {note}"));
        }
        line
    }

    /// Prints the report: on stdout, or on stderr when the bytes went to stdout.
    pub(crate) fn print(&self, destination: &Destination, out: Output) -> Result<(), CliError> {
        if !matches!(destination, Destination::Stdout) {
            return out.result(self, Saved::human);
        }
        let line = if out.is_json() {
            output::json_text(self)?
        } else {
            self.human()
        };
        // The bytes went to stdout: the report goes to stderr.
        crate::output::note(&line);
        Ok(())
    }
}

/// The options of one download: the SHA-256 always computed (and reported), checked against
/// `expected` when given, reporting to `bar`.
pub(crate) fn download_options(expected: Option<Sha256Digest>, bar: &Bar) -> DownloadOptions {
    let options = match expected {
        Some(digest) => DownloadOptions::new().sha256(digest),
        None => DownloadOptions::new().compute_sha256(),
    };
    bar.attach(options)
}

fn download(global: &GlobalArgs, args: &DownloadArgs, out: Output) -> Result<(), CliError> {
    // The signal handlers first (nothing is staged before they are in place), then `-o` is
    // checked and its staging directory made, before any request.
    interrupt::install(out, Underway::Download)?;
    let planned = target::plan(&args.output)?;
    let client = clients::nxcloud(global)?;
    let info = client.get_media(&args.phone, &args.id)?;
    let destination = planned.destination(Some(info.file_name()), &args.id);
    let bar = Bar::for_stderr();
    let mut sink = destination.sink()?;
    let (phone, id) = (args.phone.as_str(), args.id.as_str());
    // `fresh`: the URL was refused (403, e.g. expired): getMedia again and download, once.
    let mut attempt = |fresh: bool| -> Result<Verified, nx_blocking::Error> {
        let options = download_options(args.sha256, &bar);
        match &mut sink {
            Sink::Writer(writer) => {
                let verified = if fresh {
                    client.download_media(phone, id, writer.as_mut(), options)
                } else {
                    client.download(&info, writer.as_mut(), options)
                }?;
                writer
                    .flush()
                    .map_err(|e| nx_blocking::Error::io("writing the download", e))?;
                Ok(verified)
            }
            Sink::Path(path) if fresh => client.download_media_to_path(phone, id, path, options),
            Sink::Path(path) => client.download_to_path(&info, path, options),
        }
    };
    let result = match attempt(false) {
        Err(e) if e.status() == Some(http::StatusCode::FORBIDDEN) => attempt(true),
        other => other,
    };
    bar.finish();
    let verified = result.map_err(|e| destination.explain(CliError::from_download(e)))?;
    let mut saved = Saved::new(&args.id, &destination, &verified, args.sha256.is_some());
    saved.path = destination.commit()?;
    saved.print(&destination, out)
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
        let mut checked = mime::upload_type(file, args.mime.as_deref(), "--mime")?;
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
        interrupt::install(out, Underway::UploadToSend)?;
        let uploaded = client.upload_media(phone, checked.mime, checked.source(file))?;
        step(
            out,
            &format!("      media id {}", crate::terminal::escape(&uploaded.id)),
        );
        step(out, &format!("[2/2] sending it as {} to {to}", send.kind()));
        let uploaded_id = Some(uploaded.id.clone());
        interrupt::install(
            out,
            Underway::Send {
                media_id: uploaded_id,
            },
        )?;
        let sent = client
            .send_media(send.with_media(MediaSource::id(uploaded.id.clone())))
            .map_err(|e| {
                // The upload stays: say its id, so that nothing is lost (also with --json).
                let mut error = CliError::from(e);
                let kept = format!(
                    "the file stays uploaded as media id {}: send it with --id once you know this message did not go out",
                    crate::terminal::escape(&uploaded.id)
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
        interrupt::install(out, Underway::Send { media_id: None })?;
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
        let client = clients::nxcloud(global)?;
        interrupt::install(out, Underway::Send { media_id: None })?;
        client.send_media(send)?
    };
    let value = match &media_id {
        Some(media_id) => json!({ "id": message.id, "media_id": media_id }),
        None => json!({ "id": message.id }),
    };
    out.result(&value, |_| {
        crate::terminal::escape(&message.id).into_owned()
    })
}

/// The kind of an uploaded or inbound media file, asked with getMedia (for `--id` without
/// `--type`).
fn id_kind(client: &Client, phone: &str, id: &str, out: Output) -> Result<MediaKind, CliError> {
    let info = client.get_media(phone, id)?;
    let kind = MediaKind::from_mime(info.mime_type()).ok_or_else(|| {
        CliError::usage(format!(
            "media {id} is {}, which is not a type mt sends; pass --type",
            crate::terminal::escape(info.mime_type())
        ))
    })?;
    step(
        out,
        &format!(
            "media {id} is {} ({kind}, from getMedia)",
            crate::terminal::escape(info.mime_type())
        ),
    );
    Ok(kind)
}
