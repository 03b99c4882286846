//! Retry-download on a WhatsApp Business On-Premises installation, with the async client,
//! against the local sandbox: ask the installation to download a customer's media again, then
//! receive the outcome at a webhook (here a tiny server on 127.0.0.1 owned by this example) and
//! match it with a [`nx_async::NotificationHub`]; then retrieve the media, checked against the
//! notification's SHA-256.
//!
//! ```sh
//! cargo run -p nx-async --example async_onprem_retry_download
//! ```

use std::time::Duration;

use nx_async::{DownloadOptions, MediaItemStatus, NotificationHub, OnPremClient};
use nx_sandbox::{DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Inbound, Sandbox, SandboxConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Your webhook: every notification body goes to the hub.
    let hub = NotificationHub::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let webhook_url = format!("http://{}/whatsapp", listener.local_addr()?);
    let webhook_hub = hub.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hub = webhook_hub.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).await.is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_ok() {
                    println!("webhook received: {}", String::from_utf8_lossy(&body));
                    let _ = hub.feed(&body);
                }
                let _ = reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });

    let sandbox = Sandbox::start(SandboxConfig::default().onprem_callback_url(webhook_url))?;
    let client = OnPremClient::builder()
        .base_url(sandbox.base_url())
        .password(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD)
        .build()?;

    // A customer's photo whose first download "failed".
    let photo = vec![0xA5; 20_000];
    let id = sandbox
        .receive_inbound(Inbound::new("image", "image/jpeg", photo.clone()))?
        .media_id;

    let expected = hub.expect(&id); // before asking, so a fast notification is not missed
    let ack = client.retry_download(&id).await?;
    println!("retry-download acknowledged for {}", ack.ids.join(", "));
    let status = expected.wait(Duration::from_secs(10)).await?;
    println!("notification: {}", describe(&status));
    let MediaItemStatus::Downloaded { id, sha256, .. } = status else {
        return Err(format!(
            "the installation could not store the media: {}",
            describe(&status)
        )
        .into());
    };

    // Stored again: retrieve it, checked against the notification's SHA-256.
    let mut options = DownloadOptions::new();
    if let Some(digest) = sha256 {
        options = options.sha256(digest);
    }
    let mut bytes = Vec::new();
    let retrieved = client.retrieve_media(&id, &mut bytes, options).await?;
    println!(
        "retrieved {} bytes of {}, SHA-256 checked: {}",
        retrieved.verified.len,
        retrieved.media.content_type.as_deref().unwrap_or("?"),
        sha256.is_some()
    );
    assert_eq!(bytes, photo);
    Ok(())
}

/// One line for a notification's item, as a person reads it (no Rust `Debug` values).
fn describe(status: &MediaItemStatus) -> String {
    match status {
        MediaItemStatus::Downloaded {
            id,
            kind,
            mime_type,
            sha256,
            ..
        } => format!(
            "downloaded {kind} {id} ({}), sha256 {}",
            mime_type.as_deref().unwrap_or("type not given"),
            sha256.map_or_else(|| "not given".to_owned(), |d| d.to_string())
        ),
        MediaItemStatus::Failed { id, errors, .. } => format!(
            "failed for {}: {}",
            id.as_deref().unwrap_or("an unnamed item"),
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        // `MediaItemStatus` may grow: an outcome this version does not know.
        other => format!(
            "an outcome this version does not know, for {}",
            other.id().unwrap_or("an unnamed item")
        ),
    }
}
