//! `nxcloud onprem login | media upload | media get | media delete | media retry-download`:
//! a WhatsApp Business On-Premises installation's media endpoints, through
//! `nx_blocking::OnPremClient` (which logs in, reuses the token and logs in again after a 401).

use std::io::Write;

use nx_protocol::onprem::format_expires_after;
use serde_json::json;

use crate::args::{
    ENV_ONPREM_PASSWORD, ENV_ONPREM_USERNAME, GlobalArgs, OnPremArgs, OnPremCommand, OnPremGetArgs,
    OnPremIdArgs, OnPremLoginArgs, OnPremMediaCommand, OnPremUploadArgs,
};
use crate::clients;
use crate::commands::media::{Saved, download_options};
use crate::exit::CliError;
use crate::interrupt::{self, Underway};
use crate::mime;
use crate::output::Output;
use crate::progress::Bar;
use crate::target::{self, Sink};
use crate::terminal::shown;

/// Runs `nxcloud onprem ...`.
pub(crate) fn run(global: &GlobalArgs, args: &OnPremArgs, out: Output) -> Result<(), CliError> {
    match &args.command {
        OnPremCommand::Login(login_args) => login(global, args, login_args, out),
        OnPremCommand::Media(OnPremMediaCommand::Upload(upload_args)) => {
            upload(global, args, upload_args, out)
        }
        OnPremCommand::Media(OnPremMediaCommand::Get(get_args)) => get(global, args, get_args, out),
        OnPremCommand::Media(OnPremMediaCommand::Delete(id)) => delete(global, args, id, out),
        OnPremCommand::Media(OnPremMediaCommand::RetryDownload(id)) => {
            retry_download(global, args, id, out)
        }
        OnPremCommand::Media(OnPremMediaCommand::Export(export)) => {
            super::archive::onprem(global, args, export, out)
        }
    }
}

/// Logs in (setting a new password on a fresh installation's first login) and prints the
/// token alone (for `WA_ONPREM_TOKEN`), or with `--json` the token and its expiry.
fn login(
    global: &GlobalArgs,
    args: &OnPremArgs,
    login: &OnPremLoginArgs,
    out: Output,
) -> Result<(), CliError> {
    if args.username.is_none() || args.password.is_none() {
        let given = if args.token.is_some() {
            " (a token was given: it needs no login, pass it to the other commands as it is)"
        } else {
            ""
        };
        return Err(CliError::usage(format!(
            "login needs --username and --password (or {ENV_ONPREM_USERNAME} and {ENV_ONPREM_PASSWORD}; or --password-file PATH){given}"
        )));
    }
    let client = clients::onprem(global, args)?;
    let token = match &login.new_password {
        Some(new_password) => client.first_login(new_password)?,
        None => client.login()?,
    };
    let expires = token.expires_after().map(format_expires_after);
    let value = json!({ "token": token.expose(), "expires_after": expires });
    out.result(&value, |_| shown(token.expose()).to_string())
}

fn upload(
    global: &GlobalArgs,
    args: &OnPremArgs,
    upload: &OnPremUploadArgs,
    out: Output,
) -> Result<(), CliError> {
    // Refusals (type, size, leading bytes) come before connecting to anything.
    let mut checked = mime::upload_type(&upload.file, upload.mime.as_deref(), "--type")?;
    let client = clients::onprem(global, args)?;
    interrupt::install(out, Underway::Upload)?;
    let bar = Bar::for_stderr();
    let source = bar.attach_upload(checked.source(&upload.file));
    let uploaded = client.upload_media(checked.mime, source);
    bar.finish();
    let uploaded = uploaded?;
    let value = json!({
        "id": uploaded.id,
        "mime_type": checked.mime,
        "kind": checked.kind.to_string(),
        "bytes": checked.len,
    });
    out.result(&value, |_| shown(&uploaded.id).to_string())
}

fn get(
    global: &GlobalArgs,
    args: &OnPremArgs,
    get: &OnPremGetArgs,
    out: Output,
) -> Result<(), CliError> {
    // `-o` is checked (and its staging directory made) before any request. A retrieve has no
    // file name: in a directory, the file is named after the id.
    interrupt::install(out, Underway::Download)?;
    let planned = target::plan(&get.output)?;
    let client = clients::onprem(global, args)?;
    let destination = planned.destination(None, &get.id);
    let bar = Bar::for_stderr();
    let options = download_options(get.sha256, &bar);
    let result = match destination.sink()? {
        Sink::Writer(mut writer) => client
            .retrieve_media(&get.id, writer.as_mut(), options)
            .and_then(|r| {
                writer
                    .flush()
                    .map_err(|e| nx_blocking::Error::io("writing the download", e))?;
                Ok(r)
            }),
        Sink::Path(path) => client.retrieve_media_to_path(&get.id, path, options),
    };
    bar.finish();
    let retrieved = result.map_err(|e| destination.explain(CliError::from(e)))?;
    let mut saved = Saved::new(
        &get.id,
        &destination,
        &retrieved.verified,
        get.sha256.is_some(),
    );
    saved.mime_type = retrieved.media.content_type.as_deref();
    saved.path = destination.commit()?;
    saved.print(&destination, out)
}

fn delete(
    global: &GlobalArgs,
    args: &OnPremArgs,
    id: &OnPremIdArgs,
    out: Output,
) -> Result<(), CliError> {
    let client = clients::onprem(global, args)?;
    client.delete_media(&id.id)?;
    out.result(&json!({ "id": id.id, "deleted": true }), |_| {
        format!("deleted {}", shown(&id.id))
    })
}

fn retry_download(
    global: &GlobalArgs,
    args: &OnPremArgs,
    id: &OnPremIdArgs,
    out: Output,
) -> Result<(), CliError> {
    let client = clients::onprem(global, args)?;
    let requested = client.retry_download(&id.id)?;
    out.result(&json!({ "requested": requested.ids }), |_| {
        format!(
            "download requested for {}; the outcome arrives at the webhook as a media notification (read it with `nxcloud webhook parse`)",
            shown(&requested.ids.join(", "))
        )
    })
}
