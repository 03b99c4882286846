//! `nxcloud webhook parse`: the media references in an NXCloud inbound webhook body or an
//! On-Premises media notification, told apart by shape (`media_items` is a notification;
//! `messages`, `contacts` or `merchant_phone` is an inbound message webhook). The parsing is
//! `nx_protocol`'s.

use nx_protocol::onprem::{MediaItemStatus, MetaError, parse_media_notification};
use nx_protocol::wa::{InboundWebhook, parse_inbound_webhook};
use serde::Serialize;
use serde_json::Value;

use crate::args::{WebhookCommand, WebhookParseArgs};
use crate::exit::CliError;
use crate::input;
use crate::output::Output;
use crate::terminal::{self, shown};

/// Runs `nxcloud webhook ...`.
pub(crate) fn run(command: &WebhookCommand, out: Output) -> Result<(), CliError> {
    match command {
        WebhookCommand::Parse(args) => parse(args, out),
    }
}

/// Which kind of body it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    /// NXCloud's inbound-message webhook.
    NxcloudInbound,
    /// An On-Premises media notification (retry-download result).
    OnpremNotification,
}

#[derive(Serialize)]
struct InboundItem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    mime_type: Option<&'a str>,
    sha256: Option<String>,
    caption: Option<&'a str>,
    filename: Option<&'a str>,
    from: Option<&'a str>,
    message_id: Option<&'a str>,
    timestamp: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum NotificationItem<'a> {
    Downloaded {
        #[serde(rename = "type")]
        kind: &'a str,
        id: &'a str,
        mime_type: Option<&'a str>,
        sha256: Option<String>,
        state: Option<&'a str>,
    },
    Failed {
        #[serde(rename = "type")]
        kind: Option<&'a str>,
        id: Option<&'a str>,
        errors: &'a [MetaError],
        state: Option<&'a str>,
    },
}

fn read_body(args: &WebhookParseArgs) -> Result<Vec<u8>, CliError> {
    input::read_capped(
        &args.file,
        input::MAX_JSON,
        "a webhook body is a small JSON document",
    )
}

fn detect(body: &[u8]) -> Result<Source, CliError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| CliError::usage(format!("the webhook body is not JSON: {e}")))?;
    let has = |key: &str| value.get(key).is_some();
    if has("media_items") {
        Ok(Source::OnpremNotification)
    } else if has("messages") || has("contacts") || has("merchant_phone") {
        Ok(Source::NxcloudInbound)
    } else {
        Err(CliError::usage(
            "the body is neither an NXCloud inbound webhook (with `messages`) nor an On-Premises media notification (with `media_items`)",
        ))
    }
}

fn parse(args: &WebhookParseArgs, out: Output) -> Result<(), CliError> {
    let body = read_body(args)?;
    match detect(&body)? {
        Source::NxcloudInbound => {
            let hook = parse_inbound_webhook(&body).map_err(|e| CliError::usage(e.to_string()))?;
            inbound(&hook, out)
        }
        Source::OnpremNotification => {
            let items =
                parse_media_notification(&body).map_err(|e| CliError::usage(e.to_string()))?;
            notification(&items, out)
        }
    }
}

fn inbound(hook: &InboundWebhook, out: Output) -> Result<(), CliError> {
    let items: Vec<InboundItem<'_>> = hook
        .media
        .iter()
        .map(|m| InboundItem {
            kind: &m.kind,
            id: &m.id,
            mime_type: m.mime_type.as_deref(),
            sha256: m.sha256.map(|d| d.to_string()),
            caption: m.caption.as_deref(),
            filename: m.filename.as_deref(),
            from: m.from.as_deref(),
            message_id: m.message_id.as_deref(),
            timestamp: m.timestamp.as_deref(),
        })
        .collect();
    let rejected: Vec<Value> = hook
        .rejected
        .iter()
        .map(|r| {
            serde_json::json!({
                "index": r.index,
                "type": r.kind,
                "message_id": r.message_id,
                "reason": r.reason,
            })
        })
        .collect();
    let value = serde_json::json!({
        "source": Source::NxcloudInbound,
        "merchant_phone": hook.merchant_phone,
        "media": items,
        "rejected": rejected,
    });
    out.result(&value, |_| {
        let merchant = hook.merchant_phone.as_deref();
        let mut text = format!(
            "NXCloud inbound webhook to {}: {} media reference(s)",
            merchant.map_or(shown("(no merchant_phone)"), shown),
            items.len()
        );
        for (i, item) in items.iter().enumerate() {
            text.push_str(&format!(
                "\n{}. {} {} {}",
                i + 1,
                shown(item.kind),
                shown(item.id),
                shown(item.mime_type.unwrap_or("(no mime_type)"))
            ));
            if let Some(from) = item.from {
                text.push_str(&format!(" from {}", shown(from)));
            }
            for (label, value) in [
                ("sha256", item.sha256.as_deref()),
                ("caption", item.caption),
                ("filename", item.filename),
            ] {
                if let Some(value) = value {
                    text.push_str(&format!("\n   {label}: {}", shown(value)));
                }
            }
            let phone = merchant.unwrap_or("PHONE");
            let mut words = vec![
                "nxcloud", "media", "download", "--phone", phone, "--id", item.id,
            ];
            if let Some(sha) = &item.sha256 {
                words.extend(["--sha256", sha]);
            }
            words.extend(["-o", "FILE"]);
            text.push_str(&fetch_line(&words));
        }
        if !hook.rejected.is_empty() {
            text.push_str(&format!(
                "\n{} message(s) could not be read:",
                hook.rejected.len()
            ));
            for rejected in &hook.rejected {
                text.push_str(&format!("\n   {}", shown(&rejected.to_string())));
            }
        }
        text
    })
}

/// The `fetch:` line of a media reference: the command, shell-quoted; or, when a value holds
/// characters that cannot be printed as a command, a note saying so (the values are shown
/// escaped above).
fn fetch_line(words: &[&str]) -> String {
    match terminal::command(words) {
        Some(line) => format!("\n   fetch: {line}"),
        None => {
            "\n   fetch: (not shown as a command: a value holds control characters; see --json)"
                .to_owned()
        }
    }
}

fn notification(items: &[MediaItemStatus], out: Output) -> Result<(), CliError> {
    let listed: Vec<NotificationItem<'_>> = items
        .iter()
        .map(|item| match item {
            MediaItemStatus::Downloaded {
                id,
                kind,
                mime_type,
                sha256,
                status,
                ..
            } => NotificationItem::Downloaded {
                kind,
                id,
                mime_type: mime_type.as_deref(),
                sha256: sha256.map(|d| d.to_string()),
                state: status.as_deref(),
            },
            MediaItemStatus::Failed {
                id,
                kind,
                errors,
                status,
                ..
            } => NotificationItem::Failed {
                kind: kind.as_deref(),
                id: id.as_deref(),
                errors,
                state: status.as_deref(),
            },
            // An outcome this version does not know: shown as not stored, which is all that
            // can be said of it.
            other => NotificationItem::Failed {
                kind: other.kind(),
                id: other.id(),
                errors: &[],
                state: None,
            },
        })
        .collect();
    let value = serde_json::json!({
        "source": Source::OnpremNotification,
        "media": listed,
    });
    out.result(&value, |_| {
        let mut text = format!("On-Premises media notification: {} item(s)", listed.len());
        for (i, item) in listed.iter().enumerate() {
            match item {
                NotificationItem::Downloaded {
                    kind,
                    id,
                    mime_type,
                    sha256,
                    state,
                } => {
                    text.push_str(&format!(
                        "\n{}. downloaded {} {} {}",
                        i + 1,
                        shown(kind),
                        shown(id),
                        shown(mime_type.unwrap_or("(no mime_type)"))
                    ));
                    if let Some(state) = state {
                        text.push_str(&format!(" (status {})", shown(state)));
                    }
                    let mut words = vec!["nxcloud", "onprem", "media", "get", id];
                    if let Some(sha) = sha256 {
                        text.push_str(&format!("\n   sha256: {sha}"));
                        words.extend(["--sha256", sha]);
                    }
                    words.extend(["-o", "FILE"]);
                    text.push_str(&fetch_line(&words));
                }
                NotificationItem::Failed {
                    kind,
                    id,
                    errors,
                    state,
                } => {
                    text.push_str(&format!(
                        "\n{}. failed {} {}",
                        i + 1,
                        shown(kind.unwrap_or("(no type)")),
                        shown(id.unwrap_or("(no id)"))
                    ));
                    if let Some(state) = state {
                        text.push_str(&format!(" (status {})", shown(state)));
                    }
                    for error in *errors {
                        text.push_str(&format!("\n   {}", shown(&error.to_string())));
                    }
                    if errors.is_empty() && state.is_none() {
                        text.push_str("\n   (no error details)");
                    }
                }
            }
        }
        text
    })
}
