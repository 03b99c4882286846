//! Retry-download with the blocking On-Premises client, against the local sandbox (no
//! credentials, no network): a customer sends a photo -> the business asks the On-Premises
//! installation to download it again -> the installation acknowledges at once, then POSTs a
//! media notification to the business's webhook -> the webhook handler feeds it to a
//! [`NotificationHub`], which wakes the code waiting for that media id -> the media is retrieved
//! and checked against the notification's SHA-256.
//!
//! The webhook is a tiny `std::net` HTTP server on 127.0.0.1; every wait is bounded, and the
//! example stops by itself.
//!
//! ```sh
//! cargo run -p nx-blocking --example onprem_retry_download
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nx_blocking::{DownloadOptions, MediaItemStatus, NotificationHub, OnPremClient};
use nx_sandbox::{DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Inbound, Sandbox, SandboxConfig};

/// The longest the webhook server runs, whatever happens.
const WEBHOOK_LIFETIME: Duration = Duration::from_secs(20);
/// The longest we wait for the notification.
const NOTIFICATION_WAIT: Duration = Duration::from_secs(10);
/// The largest notification body the webhook accepts.
const MAX_BODY: usize = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hub = NotificationHub::new();
    let webhook = Webhook::start(hub.clone())?;

    let config =
        SandboxConfig::default().onprem_callback_url(format!("http://{}/whatsapp", webhook.addr));
    let sandbox = Sandbox::start(config)?;
    let client = OnPremClient::builder()
        .base_url(sandbox.base_url())
        .password(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD)
        .build()?;

    // A customer sends a photo; the installation's first download of it, we pretend, failed.
    let photo: Vec<u8> = b"\xff\xd8\xff\xe0 a small stand-in for a JPEG "
        .iter()
        .copied()
        .cycle()
        .take(48 * 1024)
        .collect();
    let sent = sandbox.receive_inbound(Inbound::new("image", "image/jpeg", photo.clone()))?;
    println!("customer sent {} ({} bytes)", sent.media_id, sent.len);

    // Expect the notification before asking, so a fast one cannot be missed.
    let expected = hub.expect(&sent.media_id);
    let ack = client.retry_download(&sent.media_id)?;
    println!("retry-download acknowledged for {}", ack.ids.join(", "));

    let status = expected.wait(NOTIFICATION_WAIT)?;
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
    let retrieved = client.retrieve_media(&id, &mut bytes, options)?;
    println!(
        "retrieved {} bytes of {}, SHA-256 checked: {}",
        retrieved.verified.len,
        retrieved.media.content_type.as_deref().unwrap_or("?"),
        sha256.is_some()
    );
    assert_eq!(bytes, photo);

    webhook.stop();
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

/// A minimal webhook receiver: one thread, one request per connection, each body fed to the hub.
struct Webhook {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Webhook {
    fn start(hub: NotificationHub) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + WEBHOOK_LIFETIME;
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => handle(stream, &hub),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => eprintln!("webhook: accept failed: {e}"),
                }
            }
        });
        Ok(Self { addr, stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Reads one POST, answers 200 (or 400), and feeds its body to the hub.
fn handle(mut stream: TcpStream, hub: &NotificationHub) {
    let body = match read_post(&stream) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("webhook: unreadable request: {e}");
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    };
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    println!("webhook received: {}", String::from_utf8_lossy(&body));
    match hub.feed(&body) {
        Ok(completed) => println!("webhook: completed {completed} wait(s)"),
        Err(e) => eprintln!("webhook: not a media notification: {e}"),
    }
}

/// The body of one HTTP/1.1 request with a `Content-Length` (what the installation sends).
fn read_post(stream: &TcpStream) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("POST ") {
        return Err(bad("not a POST"));
    }
    let mut len = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("the head ended early"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse::<usize>().ok();
        }
    }
    let len = len
        .filter(|&n| n <= MAX_BODY)
        .ok_or_else(|| bad("no usable Content-Length"))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}
