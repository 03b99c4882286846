//! Where the items come from: one line of input per webhook body, notification or media id,
//! read into [`Item`]s, each media id once.

use std::collections::HashMap;
use std::io::BufRead;

use nx_protocol::download::Sha256Digest;
use nx_protocol::onprem::{MediaItemStatus, parse_media_notification};
use nx_protocol::wa::parse_inbound_webhook;

/// What the source's lines are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// NXCloud inbound webhook bodies, one JSON document per line (`merchant_phone` names the
    /// number getMedia is asked on).
    NxCloudWebhooks,
    /// On-Premises media ids, one per line; a line that starts with `{` is read as an
    /// On-Premises media notification (`media_items`) or inbound webhook (`messages`), from
    /// which ids, MIME types and SHA-256 are taken.
    OnPrem,
}

/// One media file to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Item {
    /// The media id.
    pub id: String,
    /// The source line it was first read from (1-based).
    pub line: u64,
    /// The merchant number (NXCloud: getMedia and deleteMedia are asked on it).
    pub phone: Option<String>,
    /// The file's SHA-256 as the webhook or notification gave it: the download must match.
    pub sha256: Option<Sha256Digest>,
    /// The MIME type as the webhook or notification gave it.
    pub mime_type: Option<String>,
}

impl Item {
    /// An item with only an id (as an On-Premises id list gives it).
    pub fn new(id: impl Into<String>, line: u64) -> Self {
        Self {
            id: id.into(),
            line,
            phone: None,
            sha256: None,
            mime_type: None,
        }
    }

    /// The merchant number.
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// The expected SHA-256.
    pub fn sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }

    /// The MIME type.
    pub fn mime_type(mut self, mime: impl Into<String>) -> Self {
        self.mime_type = Some(mime.into());
        self
    }
}

/// A line (or a part of one) that names no usable media: reported, never dropped silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The line (1-based).
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The items of a whole source, each media id once, in the order first seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// The items.
    pub items: Vec<Item>,
    /// The lines that could not be read.
    pub rejected: Vec<LineError>,
    /// How many references repeated an id already seen (a duplicate webhook, say).
    pub duplicates: u64,
}

impl Source {
    /// Parses a whole source text.
    ///
    /// ```
    /// use nx_archive::{Source, SourceKind};
    /// let source = Source::parse(SourceKind::OnPrem, "id-1\n\nid-2\nid-1\nnot an id\n");
    /// let ids: Vec<&str> = source.items.iter().map(|i| i.id.as_str()).collect();
    /// assert_eq!(ids, ["id-1", "id-2"]);
    /// assert_eq!(source.duplicates, 1);
    /// assert_eq!(source.rejected[0].to_string(), "line 5: an id is one word: this line holds spaces");
    /// ```
    pub fn parse(kind: SourceKind, text: &str) -> Source {
        let mut source = Collector::default();
        for (index, line) in text.lines().enumerate() {
            source.add(kind, index as u64 + 1, line);
        }
        source.finish()
    }

    /// Reads a source line by line (a line that is not UTF-8 is rejected, not fatal).
    pub fn read(kind: SourceKind, reader: impl BufRead) -> std::io::Result<Source> {
        let mut source = Collector::default();
        for (index, line) in reader.split(b'\n').enumerate() {
            let line_no = index as u64 + 1;
            let bytes = line?;
            match std::str::from_utf8(&bytes) {
                Ok(text) => source.add(kind, line_no, text.strip_suffix('\r').unwrap_or(text)),
                Err(_) => source.source.rejected.push(LineError {
                    line: line_no,
                    reason: "not UTF-8 text".into(),
                }),
            }
        }
        Ok(source.finish())
    }
}

#[derive(Default)]
struct Collector {
    source: Source,
    seen: HashMap<String, usize>,
}

impl Collector {
    fn add(&mut self, kind: SourceKind, line: u64, text: &str) {
        let (items, rejected) = parse_line(kind, line, text);
        self.source.rejected.extend(rejected);
        for item in items {
            match self.seen.get(&item.id) {
                // A later reference fills in what the first lacked (a retry-download
                // notification gives the SHA-256 an id list does not).
                Some(&at) => {
                    let first = &mut self.source.items[at];
                    first.sha256 = first.sha256.or(item.sha256);
                    first.mime_type = first.mime_type.take().or(item.mime_type);
                    first.phone = first.phone.take().or(item.phone);
                    self.source.duplicates += 1;
                }
                None => {
                    self.seen.insert(item.id.clone(), self.source.items.len());
                    self.source.items.push(item);
                }
            }
        }
    }

    fn finish(self) -> Source {
        self.source
    }
}

/// Reads one line: the items it names and what in it could not be read. A blank line names
/// nothing; so does a webhook whose messages carry no media (text, location).
pub fn parse_line(kind: SourceKind, line: u64, text: &str) -> (Vec<Item>, Vec<LineError>) {
    let trimmed = text.trim();
    let reject = |reason: String| LineError { line, reason };
    if trimmed.is_empty() {
        return (Vec::new(), Vec::new());
    }
    match kind {
        SourceKind::NxCloudWebhooks => webhook(line, trimmed, true),
        SourceKind::OnPrem if trimmed.starts_with('{') => onprem_json(line, trimmed),
        SourceKind::OnPrem => {
            if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
                (
                    Vec::new(),
                    vec![reject(
                        "an id is one word: this line holds spaces".to_owned(),
                    )],
                )
            } else {
                (vec![Item::new(trimmed, line)], Vec::new())
            }
        }
    }
}

/// The media of an inbound webhook body. NXCloud's (`need_phone`) must name the merchant, on
/// whose number getMedia is asked; an On-Premises one need not.
fn webhook(line: u64, text: &str, need_phone: bool) -> (Vec<Item>, Vec<LineError>) {
    let reject = |reason: String| LineError { line, reason };
    let hook = match parse_inbound_webhook(text.as_bytes()) {
        Ok(hook) => hook,
        Err(e) => return (Vec::new(), vec![reject(e.to_string())]),
    };
    let mut rejected: Vec<LineError> = hook
        .rejected
        .iter()
        .map(|r| reject(r.to_string()))
        .collect();
    let phone = hook.merchant_phone.filter(|p| !p.is_empty() && need_phone);
    if need_phone && phone.is_none() {
        if !hook.media.is_empty() {
            rejected.push(reject(
                "the webhook has no merchant_phone, which getMedia needs".into(),
            ));
        }
        return (Vec::new(), rejected);
    }
    let items = hook
        .media
        .into_iter()
        .map(|m| Item {
            id: m.id,
            line,
            phone: phone.clone(),
            sha256: m.sha256,
            mime_type: m.mime_type,
        })
        .collect();
    (items, rejected)
}

fn onprem_json(line: u64, text: &str) -> (Vec<Item>, Vec<LineError>) {
    let value = serde_json::from_str::<serde_json::Value>(text).ok();
    let has = |key: &str| value.as_ref().is_some_and(|v| v.get(key).is_some());
    if !has("media_items") {
        if has("messages") {
            // An inbound message webhook: NXCloud's shape, without a merchant phone that
            // matters.
            return webhook(line, text, false);
        }
        let reason = "neither an On-Premises media notification nor an inbound webhook body";
        return (
            Vec::new(),
            vec![LineError {
                line,
                reason: reason.into(),
            }],
        );
    }
    match parse_media_notification(text.as_bytes()) {
        Err(e) => (
            Vec::new(),
            vec![LineError {
                line,
                reason: e.to_string(),
            }],
        ),
        Ok(statuses) => {
            let mut items = Vec::new();
            let mut rejected = Vec::new();
            for (index, status) in statuses.into_iter().enumerate() {
                match status {
                    MediaItemStatus::Downloaded {
                        id,
                        mime_type,
                        sha256,
                        ..
                    } => items.push(Item {
                        id,
                        line,
                        phone: None,
                        sha256,
                        mime_type,
                    }),
                    // Reading: a failed re-download still names media the business wants;
                    // retrieving it says whether the installation has it (a 404 is recorded).
                    MediaItemStatus::Failed { id: Some(id), .. } => items.push(Item::new(id, line)),
                    _ => rejected.push(LineError {
                        line,
                        reason: format!("media_items[{index}] names no media id"),
                    }),
                }
            }
            (items, rejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b";

    fn hook(id: &str, phone: &str) -> String {
        format!(
            r#"{{"messages":[{{"from":"8613900139000","id":"m-{id}","type":"image","image":{{"id":"{id}","mime_type":"image/jpeg","sha256":"{SHA}"}}}},{{"type":"text","text":{{"body":"hi"}}}}],"merchant_phone":"{phone}"}}"#
        )
    }

    #[test]
    fn webhooks_give_id_phone_sha_and_type() {
        let text = format!(
            "{}\n\n{}\n{}\nnot json\n{}\n",
            hook("a", "8613800138000"),
            hook("b", "8613800138000"),
            hook("a", "8613800138000"),
            r#"{"messages":[{"type":"image","image":{"id":"c"}}]}"#,
        );
        let source = Source::parse(SourceKind::NxCloudWebhooks, &text);
        let ids: Vec<(&str, u64)> = source
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.line))
            .collect();
        assert_eq!(ids, [("a", 1), ("b", 3)]);
        assert_eq!(source.duplicates, 1);
        let a = &source.items[0];
        assert_eq!(a.phone.as_deref(), Some("8613800138000"));
        assert_eq!(a.sha256.unwrap().to_string(), SHA);
        assert_eq!(a.mime_type.as_deref(), Some("image/jpeg"));
        let lines: Vec<u64> = source.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [5, 6], "{:?}", source.rejected);
        assert!(source.rejected[1].reason.contains("merchant_phone"));
    }

    #[test]
    fn onprem_lines_are_ids_notifications_or_webhooks() {
        let text = format!(
            "id-1\r\n{}\n{}\n{}\n",
            format_args!(
                r#"{{"media_items":[{{"image":{{"id":"id-1","mime_type":"image/png","sha256":"{SHA}","status":"downloaded"}},"type":"image"}},{{"errors":[{{"code":400,"title":"x"}}],"type":"image"}}]}}"#
            ),
            hook("id-2", "1"),
            r#"{"other":1}"#,
        );
        let source = Source::read(SourceKind::OnPrem, text.as_bytes()).unwrap();
        assert_eq!(source.items.len(), 2);
        // The notification filled in what the id line lacked, and kept the first line.
        let first = &source.items[0];
        assert_eq!((first.id.as_str(), first.line), ("id-1", 1));
        assert_eq!(first.sha256.unwrap().to_string(), SHA);
        assert_eq!(first.mime_type.as_deref(), Some("image/png"));
        assert_eq!(source.items[1].id, "id-2");
        assert_eq!(source.items[1].phone, None);
        let reasons: Vec<(u64, &str)> = source
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (2, "media_items[1] names no media id"),
                (
                    4,
                    "neither an On-Premises media notification nor an inbound webhook body"
                )
            ]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_rejected_alone() {
        let source = Source::read(SourceKind::OnPrem, &b"ok\n\xff\xfe\nok2"[..]).unwrap();
        assert_eq!(source.items.len(), 2);
        assert_eq!(source.rejected[0].to_string(), "line 2: not UTF-8 text");
    }
}
