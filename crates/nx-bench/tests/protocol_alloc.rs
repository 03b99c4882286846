//! Issue 20, bar 1: the heap allocations of one getMedia's sans-IO work, pinned.
//!
//! `build_request`, `parse_response` and one whole cycle of the call machine (`Call::api`,
//! `poll` -> `Send`, `head`, `whole`, `poll` -> `Done`) each run many times under a counting
//! allocator; the allocations, reallocations and bytes per call must be exactly the figures
//! below, so that an extra allocation on the hot path fails here rather than going unnoticed.
//! Runs without libtest's harness (`harness = false`), on the main thread alone, so every
//! allocation the counter sees during a measured loop is the loop's.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use nx_bench::fixtures::{MEDIA_ID, PHONE, credentials};
use nx_bench::server::MEDIA_ENVELOPE;
use nx_protocol::call::{Call, Now, Read, Step};
use nx_protocol::operation::{BaseUrl, build_request, parse_response};
use nx_protocol::wa::GetMedia;
use nx_protocol::{ClientConfig, Timestamp};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CALLS: usize = 1_000;

/// What `CALLS` runs of `f` allocated, per run (each figure must divide exactly).
fn per_call(what: &str, mut f: impl FnMut(u64)) -> (usize, usize, usize) {
    f(0); // Anything done once (a first clone of the base URL's authority) happens here.
    let region = Region::new(GLOBAL);
    for i in 0..CALLS {
        f(i as u64);
    }
    let Stats {
        allocations,
        deallocations,
        reallocations,
        bytes_allocated,
        bytes_deallocated,
        ..
    } = region.change();
    assert_eq!(
        (deallocations, bytes_deallocated),
        (allocations, bytes_allocated),
        "{what}: everything allocated is freed by the end of each call"
    );
    for n in [allocations, reallocations, bytes_allocated] {
        assert_eq!(n % CALLS, 0, "{what}: the same allocations every call");
    }
    let figures = (
        allocations / CALLS,
        reallocations / CALLS,
        bytes_allocated / CALLS,
    );
    println!(
        "protocol_alloc: {what}: {} allocations, {} reallocations, {} bytes per call",
        figures.0, figures.1, figures.2
    );
    figures
}

fn main() {
    // The counter works: a known allocation is seen, with its size.
    let region = Region::new(GLOBAL);
    let probe = std::hint::black_box(vec![0u8; 64]);
    let seen = region.change();
    drop(probe);
    assert_eq!(
        (seen.allocations, seen.bytes_allocated),
        (1, 64),
        "the counting allocator does not see a known allocation: {seen:?}"
    );

    let base = BaseUrl::parse("http://127.0.0.1:9").expect("a base URL");
    let credentials = credentials();
    let op = GetMedia::new(PHONE, MEDIA_ID);
    let wall = |i: u64| Timestamp::from_millis(1_700_000_000_000 + i);
    let answer = MEDIA_ENVELOPE.as_bytes();

    // A reading of the figures per call, and why each allocation remains:
    let build = per_call("build_request", |i| {
        let request =
            build_request(std::hint::black_box(&op), &base, &credentials, wall(i)).expect("builds");
        std::hint::black_box(request);
    });
    // 1. the JSON body, written into a buffer of its exact size (it becomes the request's
    //    `Bytes` without a copy);
    // 2. one buffer that the five NXCloud header values, the `Content-Length` and the path are
    //    all sliced from (`Bytes::from_owner`: the bytes live inside that one allocation);
    // 3, 4. the `HeaderMap`'s index table and entries, sized once for every header the
    //    request and the transport (User-Agent, Host) put in it.
    let body = format!(
        r#"{{"business_phone":"{PHONE}","Media-ID":"{MEDIA_ID}","messaging_product":"whatsapp"}}"#
    );
    assert_eq!(
        build,
        (4, 0, body.len() + SHARED_BYTES + HEADER_MAP_BYTES),
        "build_request"
    );

    let parse = per_call("parse_response", |_| {
        let info =
            parse_response(&op, StatusCode::OK, std::hint::black_box(answer)).expect("parses");
        std::hint::black_box(info);
    });
    // One: `MediaInfo`'s one buffer (the download URL, then the MIME type and the file name),
    // of its exact size; the envelope and `data` are read in place by the plain reader, and
    // the URL is checked before anything is copied.
    let url = MEDIA_ENVELOPE
        .split_once(r#""url":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(0, |(url, _)| url.len());
    assert_eq!(
        parse,
        (1, 0, url + "image/jpeg".len() + "photo.jpg".len()),
        "parse_response"
    );

    let mut config = ClientConfig::new(credentials.clone(), "protocol-alloc/1.0");
    config.base_url = base.clone();
    let mut head = HeaderMap::new();
    head.insert(http::header::CONTENT_LENGTH, answer.len().into());
    let cycle = per_call("one call machine cycle", |i| {
        let now = Now {
            at: Duration::from_millis(i),
            wall: wall(i),
        };
        let mut call = Call::api(std::hint::black_box(&op), &config, Default::default());
        let Step::Send(request) = call.poll(now) else {
            panic!("the first step sends");
        };
        std::hint::black_box(request);
        let Read::Whole { max } = call.head(StatusCode::OK, &head, now.at) else {
            panic!("an API answer is read whole");
        };
        assert!(max >= answer.len() as u64);
        call.whole(StatusCode::OK, &head, std::hint::black_box(answer), now.at);
        let Step::Done(Ok(info)) = call.poll(now) else {
            panic!("the call ends with the answer");
        };
        assert_eq!(info.mime_type(), "image/jpeg");
        std::hint::black_box(info);
    });
    // Exactly build_request's and parse_response's: the machine itself allocates nothing.
    assert_eq!(
        cycle,
        (build.0 + parse.0, 0, build.2 + parse.2),
        "one call machine cycle"
    );
}

/// The buffer the header values and the path share: 256 bytes inline, its reference count and
/// its length.
const SHARED_BYTES: usize = 256 + 2 * std::mem::size_of::<usize>();
/// A `HeaderMap::with_capacity(8)`'s tables: 16 indices of 4 bytes and room for 12 entries.
const HEADER_MAP_BYTES: usize = 16 * 4 + 12 * 104;
