//! Answer bodies: whole, streamed from a file, and the fault transforms of a body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;

use crate::pace::Pace;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// How much of a file is read per chunk when streaming it.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Why a body stream stopped early on purpose.
#[derive(Debug)]
pub(crate) struct Cut(pub(crate) &'static str);

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Cut {}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams `len` bytes of `file`, [`CHUNK`] at a time; a short file ends the body with an error.
pub(crate) fn file(file: tokio::fs::File, len: u64) -> Body {
    let stream = futures_util::stream::unfold((Some(file), len), |(file, remaining)| async move {
        let mut file = file?;
        if remaining == 0 {
            return None;
        }
        let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(Box::new(Cut("the stored file is shorter than recorded")) as BoxError),
                (None, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok(Frame::data(Bytes::from(buf))),
                    (Some(file), remaining - n as u64),
                ))
            }
            Err(e) => Some((Err(Box::new(e) as BoxError), (None, 0))),
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// How long a truncated body waits before failing, so the bytes before the cut get out.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// Sends the first `keep` bytes of `body`, then fails (the connection is closed).
pub(crate) fn truncate(body: Body, keep: u64) -> Body {
    let stream = futures_util::stream::unfold(
        (Some(BodyStream::new(body)), keep),
        |(inner, left)| async move {
            let mut inner = inner?;
            if left == 0 {
                // Give the connection time to flush what was sent before it is cut: hyper drops
                // its unflushed buffer when a body fails.
                tokio::time::sleep(FLUSH_PAUSE).await;
                return Some((
                    Err(Box::new(Cut("truncated by a fault")) as BoxError),
                    (None, 0),
                ));
            }
            loop {
                match inner.next().await {
                    None => {
                        return Some((
                            Err(Box::new(Cut("truncated by a fault")) as BoxError),
                            (None, 0),
                        ));
                    }
                    Some(Err(e)) => return Some((Err(e), (None, 0))),
                    Some(Ok(frame)) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue;
                        };
                        if data.is_empty() {
                            continue;
                        }
                        let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                        let data = data.split_to(take);
                        let left = left - take as u64;
                        return Some((Ok(Frame::data(data)), (Some(inner), left)));
                    }
                }
            }
        },
    );
    StreamBody::new(stream).boxed_unsync()
}

/// Sends `body` one byte per step of `pace` (the first after one step); with `endless`, spaces
/// follow, one per step, without end. Fails (so hyper closes the connection) once `pace` says
/// the fault must end.
pub(crate) fn trickle(body: Body, pace: Pace, endless: bool) -> Body {
    struct Trickle {
        inner: Option<BodyStream<Body>>,
        pending: Bytes,
        pace: Pace,
    }
    let start = Trickle {
        inner: Some(BodyStream::new(body)),
        pending: Bytes::new(),
        pace,
    };
    let stream = futures_util::stream::unfold(Some(start), move |state| async move {
        let mut t = state?;
        loop {
            if t.pending.is_empty() {
                match t.inner.as_mut() {
                    Some(inner) => match inner.next().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                t.pending = data;
                            }
                            continue;
                        }
                        Some(Err(e)) => return Some((Err(e), None)),
                        None if endless => t.inner = None,
                        None => return None,
                    },
                    None => t.pending = Bytes::from_static(b" "),
                }
                continue;
            }
            if let Err(why) = t.pace.tick().await {
                return Some((Err(Box::new(Cut(why)) as BoxError), None));
            }
            let byte = if t.inner.is_some() {
                t.pending.split_to(1)
            } else {
                t.pending.clone()
            };
            return Some((Ok(Frame::data(byte)), Some(t)));
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// The first `keep` bytes of `body`, then a clean end.
pub(crate) fn prefix(body: Body, keep: u64) -> Body {
    let stream = futures_util::stream::unfold(
        (Some(BodyStream::new(body)), keep),
        |(inner, left)| async move {
            let mut inner = inner.filter(|_| left > 0)?;
            loop {
                match inner.next().await? {
                    Err(e) => return Some((Err(e), (None, 0))),
                    Ok(frame) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue;
                        };
                        let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                        let data = data.split_to(take);
                        return Some((Ok(Frame::data(data)), (Some(inner), left - take as u64)));
                    }
                }
            }
        },
    );
    StreamBody::new(stream).boxed_unsync()
}

/// Flips the lowest bit of the byte at offset `at`.
pub(crate) fn corrupt(body: Body, at: u64) -> Body {
    let stream = BodyStream::new(body).scan(0u64, move |offset, frame| {
        let out = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    let start = *offset;
                    *offset += data.len() as u64;
                    if (start..*offset).contains(&at) {
                        let mut copy = BytesMut::from(&data[..]);
                        let i = usize::try_from(at - start).unwrap_or(0);
                        if let Some(b) = copy.get_mut(i) {
                            *b ^= 0x01;
                        }
                        Ok(Frame::data(copy.freeze()))
                    } else {
                        Ok(Frame::data(data))
                    }
                }
                Err(frame) => Ok(frame),
            },
            Err(e) => Err(e),
        };
        futures_util::future::ready(Some(out))
    });
    StreamBody::new(stream).boxed_unsync()
}

const OVERSIZE_HEAD: &[u8] = br#"{"code":0,"message":"Request successful","data":{"padding":""#;
const OVERSIZE_TAIL: &[u8] = br#""}}"#;
static PAD: [u8; CHUNK] = [b'a'; CHUNK];

/// A JSON body of exactly `total` bytes (at least head and tail), streamed in chunks.
pub(crate) fn oversize(total: u64) -> Body {
    let fixed = (OVERSIZE_HEAD.len() + OVERSIZE_TAIL.len()) as u64;
    let pad = total.saturating_sub(fixed);
    // 0: head, 1: padding, 2: tail, 3: done.
    let stream = futures_util::stream::unfold((0u8, pad), |(step, left)| async move {
        let frame = match step {
            0 => (Bytes::from_static(OVERSIZE_HEAD), (1, left)),
            1 if left > 0 => {
                let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                (Bytes::from_static(&PAD[..n]), (1, left - n as u64))
            }
            1 | 2 => (Bytes::from_static(OVERSIZE_TAIL), (3, 0)),
            _ => return None,
        };
        Some((Ok::<_, BoxError>(Frame::data(frame.0)), frame.1))
    });
    StreamBody::new(stream).boxed_unsync()
}

/// The exact size [`oversize`] produces for `total`.
pub(crate) fn oversize_len(total: u64) -> u64 {
    total.max((OVERSIZE_HEAD.len() + OVERSIZE_TAIL.len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: Body) -> Result<Vec<u8>, BoxError> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn transforms() {
        let data: Vec<u8> = (0u8..200).collect();
        assert!(collect(truncate(full(data.clone()), 50)).await.is_err());
        let corrupted = collect(corrupt(full(data.clone()), 100)).await.unwrap();
        assert_eq!(corrupted.len(), 200);
        assert_eq!(corrupted[100], 101);
        assert_eq!(corrupted[99], 99);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let pace = |ms| {
            Pace::new(
                Duration::from_millis(ms),
                Duration::from_secs(60),
                rx.clone(),
            )
        };
        let dripped = collect(trickle(full(b"abc".to_vec()), pace(1), false));
        assert_eq!(dripped.await.unwrap(), b"abc");
        assert_eq!(
            collect(prefix(full(data.clone()), 100)).await.unwrap(),
            data[..100]
        );
        assert_eq!(collect(prefix(full(data.clone()), 0)).await.unwrap(), b"");
        assert_eq!(
            collect(prefix(full(data.clone()), 900)).await.unwrap(),
            data
        );
        let big = collect(oversize(200_000)).await.unwrap();
        assert_eq!(big.len(), 200_000);
        let v: serde_json::Value = serde_json::from_slice(&big).unwrap();
        assert_eq!(v["code"], 0);
        assert_eq!(
            collect(oversize(3)).await.unwrap().len() as u64,
            oversize_len(3)
        );
    }
}
