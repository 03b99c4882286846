//! Retry-download on a WhatsApp Business On-Premises installation, with the async client,
//! against the local sandbox: ask the installation to download a customer's media again, then
//! receive the outcome at a webhook (here a tiny server on 127.0.0.1 owned by this example) and
//! match it with a [`nx_async::NotificationHub`].
//!
//! ```sh
//! cargo run -p nx-async --example async_onprem_retry_download
//! ```

use std::time::Duration;

use nx_async::{MediaItemStatus, NotificationHub, OnPremClient};
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
        .receive_inbound(Inbound::new("image", "image/jpeg", photo))?
        .media_id;

    let expected = hub.expect(&id); // before asking, so a fast notification is not missed
    let ack = client.retry_download(&id).await?;
    println!("retry-download acknowledged for {:?}", ack.ids);
    match expected.wait(Duration::from_secs(10)).await? {
        MediaItemStatus::Downloaded {
            id,
            mime_type,
            sha256,
            status,
            ..
        } => {
            println!("downloaded: {id} {mime_type:?} sha256 {sha256:?} status {status:?}");
        }
        failed => println!("the download failed: {failed:?}"),
    }
    Ok(())
}
