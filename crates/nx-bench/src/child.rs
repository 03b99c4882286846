//! One transfer in a child process of its own (`nx-bench child ...`), so that its peak resident
//! memory (`VmHWM`) is the client's alone. Prints one JSON line: seconds, bytes, peak KiB.

use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use nx_protocol::download::Sha256Digest;
use nx_protocol::wa::{MediaInfo, UploadMedia};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::fixtures::{
    ACCESS_KEY, ACCESS_SECRET, PHONE, Prebuilt, async_client, blocking_client, runtime,
};
use crate::procfs::peak_rss_kib;
use crate::requests::raw_hyper_client;

/// Who moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// A raw hyper-util client.
    RawAsync,
    /// `nx_async::Client`.
    SdkAsync,
    /// Raw ureq.
    RawBlocking,
    /// `nx_blocking::Client`.
    SdkBlocking,
    /// A raw hyper-util client doing what the SDK does besides moving bytes: SHA-256 of every
    /// chunk, checked at the end, and an fsync (downloads only).
    RawAsyncVerified,
    /// Raw ureq doing the same (downloads only).
    RawBlockingVerified,
    /// Raw ureq doing the same with the hash on a second thread, so that receiving and writing
    /// overlap hashing (downloads only): the most a verifying client can get from two cores.
    RawBlockingHashThread,
    /// What a user would write instead of the SDK (item 8, [`crate::hand::reqwest_download`]):
    /// reqwest streaming to the file, SHA-256 of every chunk compared at the end.
    PeerReqwest,
    /// The same writing to `<file>.part`, fsynced and renamed: the SDK's guarantees by hand.
    PeerReqwestDurable,
    /// `nx_async::Client::download` (SHA-256 verified) into a `tokio::fs::File` the caller
    /// created: the peer's work, without the temporary file, fsync and rename.
    SdkAsyncToFile,
    /// `nx_blocking::Client::download` the same way into a `std::fs::File`.
    SdkBlockingToFile,
}

impl Case {
    /// The upload cases, in the order they are run first.
    pub const UPLOAD: [Case; 4] = [
        Case::RawAsync,
        Case::SdkAsync,
        Case::RawBlocking,
        Case::SdkBlocking,
    ];

    /// The download cases, in the order they are run first.
    pub const DOWNLOAD: [Case; 7] = [
        Case::RawAsync,
        Case::SdkAsync,
        Case::RawAsyncVerified,
        Case::RawBlocking,
        Case::SdkBlocking,
        Case::RawBlockingVerified,
        Case::RawBlockingHashThread,
    ];

    /// Item 8's download cases, in the order they are run first.
    pub const PEERS_DOWNLOAD: [Case; 6] = [
        Case::SdkAsync,
        Case::PeerReqwest,
        Case::SdkBlocking,
        Case::PeerReqwestDurable,
        Case::SdkAsyncToFile,
        Case::SdkBlockingToFile,
    ];

    /// Every case.
    pub const ALL: [Case; 11] = [
        Case::RawAsync,
        Case::SdkAsync,
        Case::RawAsyncVerified,
        Case::RawBlocking,
        Case::SdkBlocking,
        Case::RawBlockingVerified,
        Case::RawBlockingHashThread,
        Case::PeerReqwest,
        Case::PeerReqwestDurable,
        Case::SdkAsyncToFile,
        Case::SdkBlockingToFile,
    ];

    /// Whether it is one of the SDK's clients.
    pub fn is_sdk(self) -> bool {
        matches!(
            self,
            Case::SdkAsync | Case::SdkBlocking | Case::SdkAsyncToFile | Case::SdkBlockingToFile
        )
    }

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Case::RawAsync => "raw-hyper",
            Case::SdkAsync => "nx-async",
            Case::RawBlocking => "raw-ureq",
            Case::SdkBlocking => "nx-blocking",
            Case::RawAsyncVerified => "raw-hyper+sha256+fsync",
            Case::RawBlockingVerified => "raw-ureq+sha256+fsync",
            Case::RawBlockingHashThread => "raw-ureq+sha256-thread+fsync",
            Case::PeerReqwest => "reqwest+sha256",
            Case::PeerReqwestDurable => "reqwest+sha256+fsync+rename",
            Case::SdkAsyncToFile => "nx-async-to-file",
            Case::SdkBlockingToFile => "nx-blocking-to-file",
        }
    }

    /// The case named `name`.
    pub fn parse(name: &str) -> Result<Case, String> {
        Case::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| format!("unknown case `{name}`"))
    }
}

/// What a child reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Seconds the transfer took (client construction excluded).
    pub secs: f64,
    /// Bytes of the file moved.
    pub len: u64,
    /// Peak resident memory of the child, KiB.
    pub hwm_kib: u64,
}

impl Outcome {
    /// As the JSON line the child prints.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "secs": self.secs, "len": self.len, "hwm_kib": self.hwm_kib })
            .to_string()
    }

    /// From the JSON line the child printed.
    pub fn from_json(line: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("child said `{line}`: {e}"))?;
        let field = |name: &str| v.get(name).ok_or_else(|| format!("`{line}` lacks {name}"));
        Ok(Self {
            secs: field("secs")?.as_f64().ok_or("secs")?,
            len: field("len")?.as_u64().ok_or("len")?,
            hwm_kib: field("hwm_kib")?.as_u64().ok_or("hwm_kib")?,
        })
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Downloads `base/file/<len>` into a file in `dir` as `case` does; the SDK and peer cases
/// verify the SHA-256 `sha256`, the raw ones only stream to the file (the `+sha256` ones
/// verify it too).
pub fn download(
    case: Case,
    base: &str,
    len: u64,
    sha256: [u8; 32],
    dir: &Path,
) -> Result<Outcome, String> {
    let url = format!("{base}/file/{len}");
    let path = dir.join(format!(
        "download-{}-{}.bin",
        case.name(),
        std::process::id()
    ));
    let digest = Sha256Digest::from_bytes(sha256);
    let info: MediaInfo = serde_json::from_value(serde_json::json!({
        "mime_type": "application/octet-stream",
        "file_name": "pattern.bin",
        "url": url,
    }))
    .map_err(err)?;
    let max = u64::MAX / 2;
    let (secs, moved) = match case {
        Case::RawAsync | Case::RawAsyncVerified => runtime()?.block_on(async {
            let verify = case == Case::RawAsyncVerified;
            let client = raw_hyper_client::<Empty<Bytes>>();
            let uri: http::Uri = url.parse().map_err(err)?;
            let start = Instant::now();
            let response = client.get(uri).await.map_err(err)?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let mut file = tokio::fs::File::create(&path).await.map_err(err)?;
            let mut hasher = verify.then(Sha256::new);
            let mut body = response.into_body();
            let mut moved = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(err)?.into_data() {
                    moved += data.len() as u64;
                    if let Some(hasher) = &mut hasher {
                        hasher.update(&data);
                    }
                    file.write_all(&data).await.map_err(err)?;
                }
            }
            file.flush().await.map_err(err)?;
            if verify {
                file.sync_all().await.map_err(err)?;
            }
            drop(file);
            check_digest(hasher, &sha256)?;
            Ok((start.elapsed().as_secs_f64(), moved))
        })?,
        Case::PeerReqwest | Case::PeerReqwestDurable => runtime()?.block_on(async {
            let client = crate::hand::reqwest_client()?;
            let durable = case == Case::PeerReqwestDurable;
            let start = Instant::now();
            let moved =
                crate::hand::reqwest_download(&client, &url, &path, &sha256, durable).await?;
            Ok::<_, String>((start.elapsed().as_secs_f64(), moved))
        })?,
        Case::SdkAsync | Case::SdkAsyncToFile => runtime()?.block_on(async {
            let client = nx_async::Client::builder()
                .credentials(ACCESS_KEY, ACCESS_SECRET)
                .base_url(base)
                .max_download_bytes(max)
                .build()
                .map_err(err)?;
            let options = nx_async::DownloadOptions::new().sha256(digest);
            let start = Instant::now();
            let verified = if case == Case::SdkAsync {
                client
                    .download_to_path(&info, &path, options)
                    .await
                    .map_err(err)?
            } else {
                let mut file = tokio::fs::File::create(&path).await.map_err(err)?;
                let verified = client
                    .download(&info, &mut file, options)
                    .await
                    .map_err(err)?;
                file.flush().await.map_err(err)?;
                verified
            };
            let secs = start.elapsed().as_secs_f64();
            if verified.sha256 != Some(digest) {
                return Err("the SDK did not verify the digest".to_owned());
            }
            Ok((secs, verified.len))
        })?,
        Case::RawBlocking | Case::RawBlockingVerified => {
            let verify = case == Case::RawBlockingVerified;
            let agent = ureq::Agent::new_with_defaults();
            let start = Instant::now();
            let response = agent.get(&url).call().map_err(err)?;
            let mut reader = response.into_body().into_reader();
            let mut file = std::fs::File::create(&path).map_err(err)?;
            let mut hasher = verify.then(Sha256::new);
            let mut buf = vec![0u8; 64 * 1024];
            let mut moved = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.to_string()),
                };
                if let Some(hasher) = &mut hasher {
                    hasher.update(&buf[..n]);
                }
                file.write_all(&buf[..n]).map_err(err)?;
                moved += n as u64;
            }
            std::io::Write::flush(&mut file).map_err(err)?;
            if verify {
                file.sync_all().map_err(err)?;
            }
            drop(file);
            check_digest(hasher, &sha256)?;
            (start.elapsed().as_secs_f64(), moved)
        }
        Case::RawBlockingHashThread => {
            let agent = ureq::Agent::new_with_defaults();
            let start = Instant::now();
            let response = agent.get(&url).call().map_err(err)?;
            let mut reader = response.into_body().into_reader();
            let mut file = std::fs::File::create(&path).map_err(err)?;
            let moved = hash_on_a_thread(&mut reader, &mut file, &sha256)?;
            file.sync_all().map_err(err)?;
            drop(file);
            (start.elapsed().as_secs_f64(), moved)
        }
        Case::SdkBlocking | Case::SdkBlockingToFile => {
            let client = nx_blocking::Client::builder()
                .credentials(ACCESS_KEY, ACCESS_SECRET)
                .base_url(base)
                .max_download_bytes(max)
                .build()
                .map_err(err)?;
            let options = nx_blocking::DownloadOptions::new().sha256(digest);
            let start = Instant::now();
            let verified = if case == Case::SdkBlocking {
                client
                    .download_to_path(&info, &path, options)
                    .map_err(err)?
            } else {
                let mut file = std::fs::File::create(&path).map_err(err)?;
                let verified = client.download(&info, &mut file, options).map_err(err)?;
                file.flush().map_err(err)?;
                verified
            };
            let secs = start.elapsed().as_secs_f64();
            if verified.sha256 != Some(digest) {
                return Err("the SDK did not verify the digest".into());
            }
            (secs, verified.len)
        }
    };
    let on_disk = std::fs::metadata(&path).map_err(err)?.len();
    std::fs::remove_file(&path).map_err(err)?;
    if moved != len || on_disk != len {
        return Err(format!(
            "{}: moved {moved} bytes, {on_disk} on disk, expected {len}",
            case.name()
        ));
    }
    Ok(Outcome {
        secs,
        len,
        hwm_kib: peak_rss_kib().map_err(err)?,
    })
}

/// Copies `reader` into `file` while a second thread hashes the same buffers: 4 buffers of
/// 64 KiB circulate between the two threads (so memory stays bounded and a slow hash slows the
/// reader down); checks the digest at the end. Returns the bytes moved.
fn hash_on_a_thread(
    reader: &mut impl Read,
    file: &mut std::fs::File,
    expected: &[u8; 32],
) -> Result<u64, String> {
    const BUFFERS: usize = 4;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx.send(vec![0u8; 64 * 1024]).map_err(err)?;
    }
    let hasher = std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        while let Ok((buf, n)) = full_rx.recv() {
            hasher.update(&buf[..n]);
            // The reader may have stopped on an error; then nobody takes the buffer back.
            let _ = empty_tx.send(buf);
        }
        hasher
    });
    let mut moved = 0u64;
    loop {
        let mut buf = empty_rx.recv().map_err(err)?;
        let n = loop {
            match reader.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            }
        };
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(err)?;
        moved += n as u64;
        full_tx.send((buf, n)).map_err(err)?;
    }
    drop(full_tx);
    let hasher = hasher
        .join()
        .map_err(|_| "the hashing thread panicked".to_owned())?;
    std::io::Write::flush(file).map_err(err)?;
    check_digest(Some(hasher), expected)?;
    Ok(moved)
}

/// Bytes read from the file at a time by the raw async upload.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Uploads `file` as a document to `base` as `case` does: the SDK's `upload_media`, or a raw
/// client streaming the identical multipart body (same head, file bytes, tail and headers).
pub fn upload(case: Case, base: &str, file: &Path) -> Result<Outcome, String> {
    let len = std::fs::metadata(file).map_err(err)?.len();
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let op = UploadMedia::new(PHONE, "application/pdf", file_name, len)
        .with_boundary("nx-sdk-0123456789abcdef0123456789abcdef");
    let secs = match case {
        Case::RawAsyncVerified
        | Case::RawBlockingVerified
        | Case::RawBlockingHashThread
        | Case::PeerReqwest
        | Case::PeerReqwestDurable
        | Case::SdkAsyncToFile
        | Case::SdkBlockingToFile => {
            return Err(format!("{} is a download case", case.name()));
        }
        Case::RawAsync => runtime()?.block_on(async {
            let prebuilt = Prebuilt::new(&op, base, nx_async::USER_AGENT)?;
            let client = raw_hyper_client();
            let start = Instant::now();
            let source = tokio::fs::File::open(file).await.map_err(err)?;
            let file_part = futures_util::stream::unfold(
                (source, prebuilt.stream_len),
                |(mut source, left)| async move {
                    if left == 0 {
                        return None;
                    }
                    let mut buf = BytesMut::with_capacity(UPLOAD_CHUNK.min(left as usize));
                    match source.read_buf(&mut buf).await {
                        Ok(0) => Some((
                            Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                            (source, 0),
                        )),
                        Ok(n) => Some((Ok(Frame::data(buf.freeze())), (source, left - n as u64))),
                        Err(e) => Some((Err(e), (source, 0))),
                    }
                },
            );
            let head = prebuilt.head.clone();
            let tail = prebuilt.tail.clone();
            let stream = futures_util::stream::once(async move { Ok(Frame::data(head)) })
                .chain(file_part)
                .chain(futures_util::stream::once(
                    async move { Ok(Frame::data(tail)) },
                ));
            let body = StreamBody::new(Box::pin(stream));
            let response = client.request(prebuilt.request(body)).await.map_err(err)?;
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .map_err(err)?
                .to_bytes();
            let secs = start.elapsed().as_secs_f64();
            check_upload_answer(status, &answer)?;
            Ok::<f64, String>(secs)
        })?,
        Case::SdkAsync => runtime()?.block_on(async {
            let client = async_client(base)?;
            let start = Instant::now();
            let uploaded = client
                .upload_media(PHONE, "application/pdf", nx_async::UploadSource::path(file))
                .await
                .map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            if uploaded.id != "x" {
                return Err(format!("unexpected id {}", uploaded.id));
            }
            Ok::<f64, String>(secs)
        })?,
        Case::RawBlocking => {
            let prebuilt = Prebuilt::new(&op, base, nx_blocking::USER_AGENT)?;
            let agent = ureq::Agent::new_with_defaults();
            let start = Instant::now();
            let source = std::fs::File::open(file).map_err(err)?;
            let head = io::Cursor::new(prebuilt.head.clone());
            let part = io::Read::take(source, prebuilt.stream_len);
            let tail = io::Cursor::new(prebuilt.tail.clone());
            let mut reader = io::Read::chain(io::Read::chain(head, part), tail);
            let request = prebuilt.request(ureq::SendBody::from_reader(&mut reader));
            let response = agent.run(request).map_err(err)?;
            let status = response.status();
            let answer = response.into_body().read_to_vec().map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            check_upload_answer(status, &answer)?;
            secs
        }
        Case::SdkBlocking => {
            let client = blocking_client(base)?;
            let start = Instant::now();
            let uploaded = client
                .upload_media(
                    PHONE,
                    "application/pdf",
                    nx_blocking::UploadSource::path(file),
                )
                .map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            if uploaded.id != "x" {
                return Err(format!("unexpected id {}", uploaded.id));
            }
            secs
        }
    };
    Ok(Outcome {
        secs,
        len,
        hwm_kib: peak_rss_kib().map_err(err)?,
    })
}

fn check_digest(hasher: Option<Sha256>, expected: &[u8; 32]) -> Result<(), String> {
    match hasher.map(|h| <[u8; 32]>::from(h.finalize())) {
        Some(actual) if actual != *expected => {
            Err("the downloaded bytes' SHA-256 is not the expected one".into())
        }
        _ => Ok(()),
    }
}

fn check_upload_answer(status: http::StatusCode, answer: &[u8]) -> Result<(), String> {
    if status.is_success() && answer == crate::server::UPLOAD_ENVELOPE.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(answer)
        ))
    }
}

/// The body of `nx-bench child <args>`:
/// `download <case> <base> <len> <sha256 hex> <dir>` or `upload <case> <base> <file>`.
pub fn run(args: &[String]) -> Result<Outcome, String> {
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("child: argument {i} missing in {args:?}"))
    };
    match arg(0)? {
        "download" => {
            let mut sha = [0u8; 32];
            hex::decode_to_slice(arg(4)?, &mut sha).map_err(err)?;
            download(
                Case::parse(arg(1)?)?,
                arg(2)?,
                arg(3)?.parse().map_err(err)?,
                sha,
                &PathBuf::from(arg(5)?),
            )
        }
        "upload" => upload(Case::parse(arg(1)?)?, arg(2)?, &PathBuf::from(arg(3)?)),
        other => Err(format!("child: unknown transfer `{other}`")),
    }
}
