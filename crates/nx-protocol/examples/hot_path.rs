//! The sans-IO hot path of one getMedia, in a loop, for instruction counts (issue 20):
//!
//! ```sh
//! cargo build --profile profiling -p nx-protocol --example hot_path
//! valgrind --tool=callgrind target/profiling/examples/hot_path build 0
//! valgrind --tool=callgrind target/profiling/examples/hot_path build 10000
//! ```
//!
//! The difference of the two totals over 10 000 is the instructions of one call. `build` runs
//! `build_request`, `parse` runs `parse_response`, `call` runs the whole call machine
//! (`Call::api`, `poll` -> `Send`, `head`, `whole`, `poll` -> `Done`), `all` the three in turn.
//! The inputs are nx-bench's (the same account, media id and answer).

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use nx_protocol::call::{Call, Now, Read, Step};
use nx_protocol::operation::{build_request, parse_response};
use nx_protocol::wa::GetMedia;
use nx_protocol::{BaseUrl, ClientConfig, Credentials, Timestamp};

/// nx-bench's fixed answer to getMedia.
const ANSWER: &[u8] = br#"{"code":0,"message":"Request successful","data":{"mime_type":"image/jpeg","file_name":"photo.jpg","url":"http://127.0.0.1:9/oss/fd81acff-eea8-4d9d-acc9-6c62904d6615?Expires=4102444800&OSSAccessKeyId=SANDBOXOSSKEYID&Signature=Zm9vYmFyYmF6cXV4"}}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "all".into());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let credentials = Credentials::new("demo-access-key", "demo-access-secret");
    let base = BaseUrl::parse("http://127.0.0.1:9").expect("a base URL");
    let mut config = ClientConfig::new(credentials.clone(), "hot-path/1.0");
    config.base_url = base.clone();
    let op = GetMedia::new("8613800138000", "fd81acff-eea8-4d9d-acc9-6c62904d6615");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_LENGTH, ANSWER.len().into());
    let wall = |i: u64| Timestamp::from_millis(1_700_000_000_000 + i);

    let build = what == "build" || what == "all";
    let parse = what == "parse" || what == "all";
    let call = what == "call" || what == "all";
    for i in 0..n {
        if build {
            let request = build_request(std::hint::black_box(&op), &base, &credentials, wall(i))
                .expect("builds");
            std::hint::black_box(request);
        }
        if parse {
            let info =
                parse_response(&op, StatusCode::OK, std::hint::black_box(ANSWER)).expect("parses");
            std::hint::black_box(info);
        }
        if call {
            let now = Now {
                at: Duration::from_millis(i),
                wall: wall(i),
            };
            let mut machine = Call::api(std::hint::black_box(&op), &config, Default::default());
            let Step::Send(request) = machine.poll(now) else {
                panic!("the first step sends");
            };
            std::hint::black_box(request);
            let Read::Whole { max } = machine.head(StatusCode::OK, &headers, now.at) else {
                panic!("an API answer is read whole");
            };
            assert!(max >= ANSWER.len() as u64);
            machine.whole(
                StatusCode::OK,
                &headers,
                std::hint::black_box(ANSWER),
                now.at,
            );
            let Step::Done(Ok(info)) = machine.poll(now) else {
                panic!("the call ends with the answer");
            };
            std::hint::black_box(info);
        }
    }
}
