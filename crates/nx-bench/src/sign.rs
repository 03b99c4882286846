//! Item 1: signing a getMedia request with a 1 KiB JSON body, against bare MD5 over the same
//! string to sign prepared in advance.

use std::hint::black_box;
use std::time::Instant;

use md5::{Digest, Md5};
use nx_protocol::AccessSecret;
use nx_protocol::sign::{SignableBody, SignableRequest, sign};

use crate::fixtures::{ACCESS_KEY, ACCESS_SECRET, FIXED_TS, MEDIA_ID, padded_body};
use crate::procfs::{load_average, load_since};
use crate::report::{Bar, Comparison, Measure, Section};

/// How long to run.
#[derive(Clone, Debug)]
pub struct SignParams {
    /// Paired runs.
    pub runs: usize,
    /// Signatures (and bare hashes) per run.
    pub iters: u64,
    /// The JSON body's length.
    pub body_len: usize,
}

impl Default for SignParams {
    fn default() -> Self {
        Self {
            runs: 9,
            iters: 300_000,
            body_len: 1024,
        }
    }
}

/// What is signed: the header parameters (in sending order, not sorted) and the body.
#[derive(Debug)]
pub struct SignFixture {
    ts: String,
    body: Vec<u8>,
    secret: AccessSecret,
    canonical: Vec<u8>,
}

impl SignFixture {
    /// A getMedia request whose JSON body is `body_len` bytes.
    pub fn new(body_len: usize) -> Self {
        let ts = FIXED_TS.to_string();
        let body = padded_body(MEDIA_ID, body_len);
        let mut canonical =
            format!("accessKey={ACCESS_KEY}&action=getMedia&bizType=2&ts={ts}&body=").into_bytes();
        canonical.extend_from_slice(&body);
        canonical.extend_from_slice(b"&accessSecret=");
        canonical.extend_from_slice(ACCESS_SECRET.as_bytes());
        Self {
            ts,
            body,
            secret: AccessSecret::new(ACCESS_SECRET),
            canonical,
        }
    }

    /// The header parameters as a transport has them (not sorted).
    pub fn params(&self) -> [(&str, &str); 4] {
        [
            ("ts", self.ts.as_str()),
            ("action", "getMedia"),
            ("accessKey", ACCESS_KEY),
            ("bizType", "2"),
        ]
    }

    /// The request as the signer sees it.
    pub fn request<'a>(&'a self, params: &'a [(&'a str, &'a str)]) -> SignableRequest<'a> {
        SignableRequest::new(params, SignableBody::Json(&self.body))
    }

    /// The secret.
    pub fn secret(&self) -> &AccessSecret {
        &self.secret
    }

    /// The whole string to sign, secret included, prepared in advance.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Checks that the signer's answer is the MD5 of [`SignFixture::canonical`].
    pub fn check(&self) -> Result<(), String> {
        let params = self.params();
        let signature = sign(&self.request(&params), &self.secret).map_err(|e| e.to_string())?;
        let expected = hex::encode(Md5::digest(&self.canonical));
        if signature.as_str() == expected {
            Ok(())
        } else {
            Err(format!(
                "the signer's answer {} is not MD5 of the string to sign {expected}",
                signature.as_str()
            ))
        }
    }
}

/// ns per signature over `iters` signatures.
fn time_sign(fixture: &SignFixture, iters: u64) -> f64 {
    let params = fixture.params();
    let request = fixture.request(&params);
    let secret = fixture.secret();
    let start = Instant::now();
    for _ in 0..iters {
        let signature = sign(black_box(&request), black_box(secret));
        let _ = black_box(signature);
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// ns per bare MD5 of the prepared string over `iters` hashes.
fn time_md5(fixture: &SignFixture, iters: u64) -> f64 {
    let canonical = fixture.canonical();
    let start = Instant::now();
    for _ in 0..iters {
        let digest = Md5::digest(black_box(canonical));
        black_box(digest);
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Runs item 1.
pub fn bench(params: &SignParams, command: &str) -> Result<Section, String> {
    let load_start = load_average().ok();
    let fixture = SignFixture::new(params.body_len);
    fixture.check()?;
    // Warm caches and clocks.
    time_sign(&fixture, params.iters / 10 + 1);
    time_md5(&fixture, params.iters / 10 + 1);
    let mut signed = Vec::new();
    let mut bare = Vec::new();
    for run in 0..params.runs {
        // A B B A ...: each side goes first half the time.
        if run % 2 == 0 {
            signed.push(time_sign(&fixture, params.iters));
            bare.push(time_md5(&fixture, params.iters));
        } else {
            bare.push(time_md5(&fixture, params.iters));
            signed.push(time_sign(&fixture, params.iters));
        }
    }
    let canonical_len = fixture.canonical().len() as f64;
    let per_byte: Vec<f64> = bare.iter().map(|ns| ns / canonical_len).collect();
    let load = load_since(load_start);
    Ok(Section {
        title: "1. Signing a getMedia request with a 1 KiB JSON body".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "`nx_protocol::sign::sign`".into(),
        baseline_label: "bare MD5 of the prepared string".into(),
        comparisons: vec![Comparison::new(
            format!("{} B body, time per signature", fixture.body().len()),
            "ns",
            &signed,
            &bare,
            Bar::AtMost(1.10),
        )],
        measures: vec![Measure::new(
            "bare MD5 cost per byte of the string to sign",
            "ns/B",
            &per_byte,
            Bar::Info,
        )],
        notes: vec![
            format!(
                "{} signatures per run, alternating which side runs first; the string to sign is {} bytes.",
                params.iters,
                fixture.canonical().len()
            ),
            "Heap allocations per signature: **0** (bar: 0, met), proven by the counting-allocator test `cargo test -p nx-bench --test sign_alloc` (stats_alloc as the global allocator, 10 000 signatures).".into(),
        ],
    })
}
