//! `nxcloud demo`: the media lifecycle against an in-process sandbox, in numbered steps, each
//! showing the signed requests it made.
//!
//! The calls go through `nx_blocking::Client` like any other command. To show what was sent, each
//! NXCloud request the sandbox logged is rebuilt from its logged `ts` with
//! `nx_protocol::operation::build_request` (the sandbox checked the signature, so the rebuilt
//! request is the one that was sent) and shown as method, path, headers and the string to sign
//! with the secret replaced by `<redacted>`. Download URLs are shown without their query.

use std::path::Path;

use nx_blocking::{Client, DownloadOptions, UploadSource};
use nx_protocol::download::Sha256Digest;
use nx_protocol::operation::{BaseUrl, build_request};
use nx_protocol::wa::{
    DeleteMedia, GetMedia, MediaKind, MediaSource, MessageDetails, SendMedia, UploadMedia,
    parse_inbound_webhook,
};
use nx_protocol::{ApiCode, Credentials, REDACTED, Timestamp};
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_APPKEY, DEMO_BUSINESS_PHONE, DEMO_CUSTOMER_PHONE,
    Inbound, LogEntry, Route, Sandbox, SandboxConfig,
};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::args::GlobalArgs;
use crate::clients;
use crate::commands::sandbox::start_error;
use crate::exit::CliError;
use crate::explain::RequestView;
use crate::output::{self, Output};
use crate::sample;

const STEPS: usize = 9;

/// The NXCloud call a step makes, to rebuild its logged requests.
enum Call<'a> {
    None,
    Upload {
        mime: &'a str,
        name: &'a str,
        len: u64,
    },
    Get(&'a str),
    Delete(&'a str),
    Send(&'a SendMedia),
}

/// One request the sandbox answered during a step.
#[derive(Serialize)]
struct Shown {
    method: String,
    path: String,
    status: Option<u16>,
    code: Option<i64>,
    #[serde(serialize_with = "as_map")]
    headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    canonical_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

fn as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// One step as printed.
#[derive(Serialize)]
struct Step {
    step: usize,
    title: String,
    requests: Vec<Shown>,
    result: Value,
    #[serde(skip)]
    lines: Vec<String>,
}

struct Demo {
    sandbox: Sandbox,
    client: Client,
    credentials: Credentials,
    base: BaseUrl,
    out: Output,
    seen: u64,
    step: usize,
    requests: usize,
}

impl Demo {
    /// The requests logged since the last step, shown.
    fn requests(&mut self, call: &Call<'_>) -> Result<Vec<Shown>, CliError> {
        let entries: Vec<LogEntry> = self
            .sandbox
            .log()
            .entries()
            .into_iter()
            .filter(|e| e.seq > self.seen)
            .collect();
        if let Some(last) = entries.last() {
            self.seen = last.seq;
        }
        // The sandbox's own POSTs (the inbound webhook, which has no URL in the demo) are not
        // requests the demo made.
        let shown: Vec<Shown> = entries
            .iter()
            .filter(|e| !e.route.is_outgoing())
            .map(|e| self.show(e, call))
            .collect::<Result<_, _>>()?;
        self.requests += shown.len();
        Ok(shown)
    }

    fn show(&self, entry: &LogEntry, call: &Call<'_>) -> Result<Shown, CliError> {
        let mut shown = Shown {
            method: entry.method.clone(),
            path: entry.path.clone(),
            status: entry.status,
            code: entry.code,
            headers: Vec::new(),
            canonical_string: None,
            note: None,
        };
        if entry.route == Route::OssDownload {
            shown.path = format!("{}?{REDACTED}", entry.path);
            shown.note = Some("the pre-signed download URL: a plain GET, no NXCloud headers");
            return Ok(shown);
        }
        let Some(ts) = entry.ts.as_deref().and_then(|t| t.parse().ok()) else {
            return Ok(shown);
        };
        let ts = Timestamp::from_millis(ts);
        let phone = DEMO_BUSINESS_PHONE;
        let request = match (entry.route, call) {
            (Route::UploadMedia, Call::Upload { mime, name, len }) => build_request(
                &UploadMedia::new(phone, *mime, *name, *len),
                &self.base,
                &self.credentials,
                ts,
            ),
            (Route::GetMedia, Call::Get(id)) => build_request(
                &GetMedia::new(phone, *id),
                &self.base,
                &self.credentials,
                ts,
            ),
            (Route::DeleteMedia, Call::Delete(id)) => build_request(
                &DeleteMedia::new(phone, *id),
                &self.base,
                &self.credentials,
                ts,
            ),
            (Route::SendMessage, Call::Send(send)) => {
                build_request(*send, &self.base, &self.credentials, ts)
            }
            _ => return Ok(shown),
        }
        .map_err(|e| CliError::failure(format!("rebuilding the request: {e}")))?;
        let view = RequestView::of(&request)
            .map_err(|e| CliError::failure(format!("rebuilding the request: {e}")))?;
        shown.headers = view.headers;
        shown.canonical_string = Some(view.canonical_string);
        Ok(shown)
    }

    /// Prints a step: its title, the requests since the last step, and its result.
    fn step(
        &mut self,
        title: impl Into<String>,
        call: Call<'_>,
        result: Value,
        lines: Vec<String>,
    ) -> Result<(), CliError> {
        self.step += 1;
        let step = Step {
            step: self.step,
            title: title.into(),
            requests: self.requests(&call)?,
            result,
            lines,
        };
        if self.out.is_json() {
            return self.out.json(&step);
        }
        let mut text = format!("\n[{}/{STEPS}] {}", step.step, step.title);
        for r in &step.requests {
            text.push_str(&format!("\n  {} {}", r.method, r.path));
            if let Some(status) = r.status {
                text.push_str(&format!(" -> HTTP {status}"));
            }
            if let Some(code) = r.code {
                text.push_str(&format!(", code {code}"));
            }
            if let Some(note) = r.note {
                text.push_str(&format!("\n    ({note})"));
            }
            for (name, value) in &r.headers {
                text.push_str(&format!("\n    {:<10} {value}", format!("{name}:")));
            }
            if let Some(canonical) = &r.canonical_string {
                text.push_str(&format!("\n    signed:    md5(\"{canonical}\")"));
            }
        }
        for line in &step.lines {
            text.push_str(&format!("\n  => {line}"));
        }
        output::stdout_line(&text)
    }
}

/// Runs `nxcloud demo`.
pub(crate) fn run(global: &GlobalArgs, out: Output) -> Result<(), CliError> {
    let sandbox = Sandbox::start(SandboxConfig::default()).map_err(|e| start_error(e, None))?;
    let mut builder = Client::builder()
        .credentials(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
        .appkey(DEMO_APPKEY)
        .base_url(sandbox.base_url())
        // The in-process sandbox is reached directly, whatever proxy the environment names.
        .proxy_config(nx_protocol::proxy::ProxyConfig::Off);
    if let Some(limit) = clients::time_limit(global) {
        builder = builder.time_limit(limit);
    }
    let client = builder.build().map_err(CliError::from_settings)?;
    let base = BaseUrl::parse(sandbox.base_url())
        .map_err(|e| CliError::failure(format!("the sandbox's base URL: {e}")))?;
    let dir = tempfile::tempdir().map_err(|e| CliError::io("creating a temporary directory", e))?;
    if !out.is_json() {
        output::stdout_line(&format!(
            "nxcloud demo: the WhatsApp media lifecycle against an in-process sandbox at {}\n\
             account {DEMO_ACCESS_KEY} (its secret is shown only as {REDACTED}), business phone {DEMO_BUSINESS_PHONE}",
            sandbox.base_url()
        ))?;
    }
    let mut demo = Demo {
        sandbox,
        client,
        credentials: Credentials::new(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET),
        base,
        out,
        seen: 0,
        step: 0,
        requests: 0,
    };
    lifecycle(&mut demo, dir.path())?;
    if !out.is_json() {
        output::stdout_line(&format!(
            "\ndone: {STEPS} steps, {} requests; the sandbox stops now",
            demo.requests
        ))?;
    }
    Ok(())
}

fn lifecycle(demo: &mut Demo, dir: &Path) -> Result<(), CliError> {
    let phone = DEMO_BUSINESS_PHONE;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::io(format!("writing {}", path.display()), e))?;
        Ok::<_, CliError>(path)
    };

    // 1. Upload.
    let image = sample::png(96, 64, 200);
    let image_sha = Sha256Digest::of(&image);
    let path = write("sample.png", &image)?;
    let len = image.len() as u64;
    let uploaded = demo
        .client
        .upload_media(phone, "image/png", UploadSource::path(&path))?;
    let id = uploaded.id.as_str();
    demo.step(
        format!("Upload a generated sample image (96x64 PNG, {len} bytes)"),
        Call::Upload {
            mime: "image/png",
            name: "sample.png",
            len,
        },
        json!({ "id": id, "bytes": len, "sha256": image_sha.to_string() }),
        vec![format!("media id {id}")],
    )?;

    // 2. Send it to the demo customer by its media id.
    let send = SendMedia::new(
        phone,
        DEMO_CUSTOMER_PHONE,
        MediaKind::Image,
        MediaSource::id(id),
    )
    .with_details(
        MessageDetails::new()
            .caption("Hello from nxcloud demo")
            .appkey(DEMO_APPKEY),
    );
    let sent = demo.client.send_media(send.clone())?;
    let recorded = demo
        .sandbox
        .sent_messages()
        .into_iter()
        .find(|m| m.id == sent.id)
        .ok_or_else(|| CliError::failure("the sandbox did not record the message"))?;
    demo.step(
        format!("Send it to the customer {DEMO_CUSTOMER_PHONE} as an image message (mt)"),
        Call::Send(&send),
        json!({ "id": sent.id, "type": recorded.kind, "to": recorded.to, "media_id": recorded.media_id }),
        vec![
            format!("message id {}", crate::terminal::escape(&sent.id)),
            format!(
                "the sandbox recorded: {} {} to {}, caption {:?} (a send is not retried once it may have reached NXCloud)",
                recorded.kind,
                recorded.media_id.as_deref().unwrap_or("-"),
                recorded.to,
                recorded.caption.as_deref().unwrap_or("")
            ),
        ],
    )?;

    // 3. Metadata and URL.
    let info = demo.client.get_media(phone, id)?;
    demo.step(
        "Get its metadata and download URL (getMedia)",
        Call::Get(id),
        json!({
            "mime_type": info.mime_type(),
            "file_name": info.file_name(),
            "url": info.url().to_string(),
            "expires_at": info.url().expires_at(),
        }),
        vec![
            format!("{} {}", info.mime_type(), info.file_name()),
            format!(
                "url {} (expires at {}; the query grants access, so it is not shown)",
                info.url(),
                info.url()
                    .expires_at()
                    .map_or_else(|| "?".to_owned(), |at| at.to_string())
            ),
        ],
    )?;

    // 4. Download and verify.
    let copy = dir.join("downloaded.png");
    let verified =
        demo.client
            .download_to_path(&info, &copy, DownloadOptions::new().sha256(image_sha))?;
    let same = std::fs::read(&copy).map_err(|e| CliError::io("reading the download", e))? == image;
    if !same {
        return Err(CliError::failure(
            "the downloaded bytes differ from the upload",
        ));
    }
    demo.step(
        "Download it and verify its SHA-256",
        Call::None,
        json!({ "bytes": verified.len, "sha256": image_sha.to_string(), "verified": true }),
        vec![format!(
            "{} bytes, sha256 {image_sha} verified; identical to the upload",
            verified.len
        )],
    )?;

    // 5. A customer sends an image: the webhook gives its id and SHA-256.
    let photo = sample::png(64, 64, 40);
    let sent = demo
        .sandbox
        .receive_inbound(Inbound::new("image", "image/png", photo.clone()).caption("hello"))
        .map_err(|e| CliError::failure(e.to_string()))?;
    let hook = parse_inbound_webhook(sent.webhook_body.as_bytes())
        .map_err(|e| CliError::failure(e.to_string()))?;
    let media = hook
        .media
        .first()
        .ok_or_else(|| CliError::failure("the inbound webhook carries no media"))?;
    let inbound_id = media.id.clone();
    let inbound_sha = media
        .sha256
        .ok_or_else(|| CliError::failure("the inbound webhook carries no sha256"))?;
    demo.step(
        "A customer sends an image: NXCloud's inbound webhook announces it",
        Call::None,
        json!({ "id": inbound_id, "type": media.kind, "mime_type": media.mime_type, "from": media.from, "sha256": inbound_sha.to_string() }),
        vec![
            format!(
                "webhook: {} {} from {}",
                media.kind,
                inbound_id,
                media.from.as_deref().unwrap_or("?")
            ),
            format!("sha256 {inbound_sha}"),
        ],
    )?;

    // 6. Fetch it by the webhook's id, checked against the webhook's SHA-256.
    let received = dir.join("received.png");
    let verified = demo.client.download_media_to_path(
        phone,
        &inbound_id,
        &received,
        DownloadOptions::new().sha256(inbound_sha),
    )?;
    demo.step(
        "Fetch the customer's image by the webhook's id (getMedia, then download, SHA-256 checked)",
        Call::Get(&inbound_id),
        json!({ "id": inbound_id, "bytes": verified.len, "verified": true }),
        vec![format!(
            "{} bytes, sha256 matches the webhook's",
            verified.len
        )],
    )?;

    // 7, 8. Delete both.
    for (what, media_id) in [("uploaded", id), ("customer's", inbound_id.as_str())] {
        demo.client.delete_media(phone, media_id)?;
        demo.step(
            format!("Delete the {what} image (deleteMedia)"),
            Call::Delete(media_id),
            json!({ "id": media_id, "deleted": true }),
            vec![format!("deleted {media_id}")],
        )?;
    }

    // 9. Gone: getMedia answers with a code.
    let code = match demo.client.get_media(phone, id) {
        Ok(_) => {
            return Err(CliError::failure(
                "getMedia still found the media after deleteMedia",
            ));
        }
        Err(error) => error.api_code().ok_or_else(|| CliError::from(error))?,
    };
    demo.step(
        "getMedia after the delete fails with a code",
        Call::Get(id),
        json!({ "code": code.get(), "meaning": code.meaning() }),
        vec![format!(
            "code {}: {}{}",
            code.get(),
            code.meaning(),
            if code == ApiCode::REQUEST_FAILED {
                ""
            } else {
                " (unexpected)"
            }
        )],
    )
}
