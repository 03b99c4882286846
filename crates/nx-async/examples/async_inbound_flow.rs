//! The inbound media flow with the async client, against the local sandbox (no credentials, no
//! network): a customer sends a photo -> NXCloud's webhook announces its media id and SHA-256 ->
//! getMedia gives a download URL -> the bytes are streamed into a file and checked -> the media
//! is deleted from WhatsApp's storage.
//!
//! ```sh
//! cargo run -p nx-async --example async_inbound_flow
//! ```

use nx_async::{Client, DownloadOptions};
use nx_protocol::wa::parse_inbound_webhook;
use nx_sandbox::{DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, Inbound, Sandbox, SandboxConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The sandbox runs on its own thread; the client talks to it over 127.0.0.1.
    let sandbox = Sandbox::start(SandboxConfig::default())?;
    let client = Client::builder()
        .credentials(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
        .base_url(sandbox.base_url())
        .build()?;

    // A customer sends a photo. In production NXCloud POSTs this JSON to your webhook URL; here
    // the sandbox hands back the exact body it would have sent.
    let photo: Vec<u8> = (0..48 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let sent = sandbox.receive_inbound(
        Inbound::new("image", "image/jpeg", photo.clone()).file_name("photo.jpg"),
    )?;
    let webhook = parse_inbound_webhook(sent.webhook_body.as_bytes())?;
    let merchant = webhook
        .merchant_phone
        .ok_or("the webhook names no merchant phone")?;

    // A message that could not be read is reported, not dropped: log it and go on with the rest.
    for rejected in &webhook.rejected {
        eprintln!("skipped {rejected}");
    }

    let dir = tempfile::tempdir()?;
    for media in &webhook.media {
        println!(
            "{} {} from {}",
            media.kind,
            media.id,
            media.from.as_deref().unwrap_or("an unknown sender")
        );
        // Stream it to a file, checked against the webhook's SHA-256: the file appears at its
        // path only once the length and the digest are right.
        let mut options = DownloadOptions::new();
        if let Some(digest) = media.sha256 {
            options = options.sha256(digest);
        }
        let path = dir.path().join(format!("{}.jpg", media.id));
        let verified = client
            .download_media_to_path(&merchant, &media.id, &path, options)
            .await?;
        println!(
            "  stored {} bytes at {}, sha256 {}",
            verified.len,
            path.display(),
            verified
                .sha256
                .map_or_else(|| "not computed".to_owned(), |d| d.to_string())
        );
        assert_eq!(std::fs::read(&path)?, photo);

        // Stored safely: delete it from WhatsApp's storage.
        client.delete_media(&merchant, &media.id).await?;
        let gone = client.get_media(&merchant, &media.id).await.unwrap_err();
        println!("  deleted; getMedia now answers: {gone}");
    }
    Ok(())
}
