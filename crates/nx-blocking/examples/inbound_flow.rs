//! The inbound media flow with the blocking client, against the local sandbox (no credentials,
//! no network): a customer sends a photo -> NXCloud's webhook announces its media id and SHA-256
//! -> getMedia gives a download URL -> the bytes are streamed into a file and checked -> the
//! media is deleted from WhatsApp's storage.
//!
//! ```sh
//! cargo run -p nx-blocking --example inbound_flow
//! ```

use nx_blocking::{Client, DownloadOptions};
use nx_protocol::wa::parse_inbound_webhook;
use nx_sandbox::{DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, Inbound, Sandbox, SandboxConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start(SandboxConfig::default())?;
    let client = Client::builder()
        .credentials(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET)
        .base_url(sandbox.base_url())
        .build()?;

    // A customer sends a photo. In production NXCloud POSTs this JSON to your webhook URL; here
    // the sandbox hands back the exact body it would have sent.
    let photo: Vec<u8> = b"\xff\xd8\xff\xe0 a small stand-in for a JPEG "
        .iter()
        .copied()
        .cycle()
        .take(48 * 1024)
        .collect();
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
        let mut options = DownloadOptions::new().progress(|done, total| match total {
            Some(total) => println!("  {done} of {total} bytes"),
            None => println!("  {done} bytes"),
        });
        if let Some(digest) = media.sha256 {
            options = options.sha256(digest);
        }
        let path = dir.path().join(format!("{}.jpg", media.id));
        let verified = client.download_media_to_path(&merchant, &media.id, &path, options)?;
        println!("  stored {} bytes at {}", verified.len, path.display());
        assert_eq!(std::fs::read(&path)?, photo);

        // Stored safely: delete it from WhatsApp's storage.
        client.delete_media(&merchant, &media.id)?;
        let gone = client.get_media(&merchant, &media.id).unwrap_err();
        println!("  deleted; getMedia now answers: {gone}");
    }
    Ok(())
}
