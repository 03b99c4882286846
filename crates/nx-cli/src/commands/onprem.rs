//! `nxcloud onprem login | media upload | media get | media delete | media retry-download`:
//! a WhatsApp Business On-Premises installation's media endpoints, through
//! `nx_blocking::OnPremClient` (which logs in, reuses the token and logs in again after a 401).

use nx_blocking::{DownloadOptions, UploadSource};
use nx_protocol::onprem::format_expires_after;
use serde_json::json;

use crate::args::{
    GlobalArgs, OnPremArgs, OnPremCommand, OnPremGetArgs, OnPremIdArgs, OnPremLoginArgs,
    OnPremMediaCommand, OnPremUploadArgs,
};
use crate::clients;
use crate::commands::media::Saved;
use crate::exit::CliError;
use crate::mime;
use crate::output::Output;
use crate::progress::Bar;
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
        return Err(CliError::usage(
            "login needs --username and --password (a token is already logged in)",
        ));
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
    let checked = mime::upload_type(&upload.file, upload.mime.as_deref(), "--type")?;
    let client = clients::onprem(global, args)?;
    let uploaded = client.upload_media(checked.mime, UploadSource::path(&upload.file))?;
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
    let client = clients::onprem(global, args)?;
    let mut options = DownloadOptions::new();
    if let Some(digest) = get.sha256 {
        options = options.sha256(digest);
    }
    let bar = Bar::for_stderr();
    let result = client.retrieve_media_to_path(&get.id, &get.output, bar.attach(options));
    bar.finish();
    let retrieved = result?;
    let saved = Saved::new(&get.id, &get.output, &retrieved.verified);
    let content_type = retrieved.media.content_type.as_deref();
    let mut value = serde_json::to_value(&saved)
        .map_err(|e| CliError::failure(format!("formatting JSON output: {e}")))?;
    value["mime_type"] = json!(content_type);
    out.result(&value, |_| match content_type {
        Some(mime) => format!("{} ({})", saved.human(), shown(mime)),
        None => saved.human(),
    })
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
