//! Answers the sandbox writes byte by byte itself, on a connection taken back from hyper, for
//! the faults hyper cannot produce: a head that trickles, trailers that never end, interim `1xx`
//! answers that never end.
//!
//! While one runs, whatever the client sends is read and thrown away, so a client still sending
//! its request body gets to the point of waiting for the answer, and a client that closes the
//! connection is noticed at once: the fault then ends. It also ends on shutdown and when its
//! hold limit passes ([`Pace`]).

use http::Response;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::Body;
use crate::pace::Pace;

/// What to write.
pub(crate) enum Raw {
    /// `answer` with its head one byte per step, then its body at once.
    HeaderDrip(Response<Body>),
    /// `answer` chunked, then trailer lines, one per step, never the empty line ending them.
    EndlessTrailers(Response<Body>),
    /// `102 Processing` interim heads, one per step, never a final answer.
    EndlessProcessing,
}

/// One trailer line of [`Raw::EndlessTrailers`] is this long, `\r\n` included.
const TRAILER_LINE: usize = 64;

/// Writes `raw` on `io`, paced by `pace`; returns when it is done, the client has closed the
/// connection, or `pace` says the fault must end. The connection is closed when `io` drops.
pub(crate) async fn write<IO>(io: IO, raw: Raw, mut pace: Pace)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(1..) = reader.read(&mut buf).await {}
    };
    // Also ends a write that blocks because the client stopped reading.
    let mut limit = pace.clone();
    tokio::select! {
        _ = play(&mut writer, raw, &mut pace) => {
            let _ = writer.shutdown().await;
        }
        () = drain => {}
        _ = limit.over() => {}
    }
}

async fn play<W: AsyncWrite + Unpin>(
    w: &mut W,
    raw: Raw,
    pace: &mut Pace,
) -> Result<(), &'static str> {
    match raw {
        Raw::EndlessProcessing => loop {
            send(w, b"HTTP/1.1 102 Processing\r\n\r\n").await?;
            pace.tick().await?;
        },
        Raw::HeaderDrip(answer) => {
            let (head, body, chunked) = framed(answer, false);
            for byte in head.chunks(1) {
                pace.tick().await?;
                send(w, byte).await?;
            }
            send_body(w, body, chunked).await?;
            if chunked {
                send(w, b"0\r\n\r\n").await?;
            }
            Ok(())
        }
        Raw::EndlessTrailers(answer) => {
            let (head, body, _) = framed(answer, true);
            send(w, &head).await?;
            send_body(w, body, true).await?;
            send(w, b"0\r\n").await?;
            for n in 1u64.. {
                send(w, &trailer_line(n)).await?;
                pace.tick().await?;
            }
            Ok(())
        }
    }
}

/// `answer`'s head as bytes (with `Connection: close`; chunked when it has no `Content-Length`
/// or when `chunked` asks for it), its body, and whether the body must be sent chunked.
fn framed(answer: Response<Body>, chunked: bool) -> (Vec<u8>, Body, bool) {
    let (mut parts, body) = answer.into_parts();
    let chunked = chunked || !parts.headers.contains_key(header::CONTENT_LENGTH);
    if chunked {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_str(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    (head, body, chunked)
}

fn trailer_line(n: u64) -> Vec<u8> {
    let mut line = format!("x-sandbox-trailer-{n}: ").into_bytes();
    line.resize(TRAILER_LINE - 2, b'a');
    line.extend_from_slice(b"\r\n");
    line
}

async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut body: Body,
    chunked: bool,
) -> Result<(), &'static str> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| "the answer's body failed")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            send(w, format!("{:x}\r\n", data.len()).as_bytes()).await?;
            send(w, &data).await?;
            send(w, b"\r\n").await?;
        } else {
            send(w, &data).await?;
        }
    }
    Ok(())
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> Result<(), &'static str> {
    w.write_all(bytes)
        .await
        .map_err(|_| "the client has gone")?;
    w.flush().await.map_err(|_| "the client has gone")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// The bytes [`Raw::HeaderDrip`] writes for `answer`, all at once: for the tests.
    async fn all_of(answer: Response<Body>) -> Bytes {
        let (head, body, chunked) = framed(answer, false);
        let mut out = head;
        send_body(&mut out, body, chunked).await.unwrap();
        Bytes::from(out)
    }

    #[tokio::test]
    async fn heads_are_framed_as_http_says() {
        let answer = crate::response::respond(
            http::StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{}"),
        );
        let bytes = all_of(answer).await;
        assert_eq!(
            &bytes[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        );
        let line = trailer_line(12);
        assert_eq!(line.len(), TRAILER_LINE);
        assert!(line.starts_with(b"x-sandbox-trailer-12: aaa"));
        assert!(line.ends_with(b"a\r\n"));
    }
}
