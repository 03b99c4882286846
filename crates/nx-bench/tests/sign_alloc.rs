//! Item 1's behaviour: signing a request allocates nothing on the heap.
//!
//! Runs without libtest's harness (`harness = false`), on the main thread alone, so every
//! allocation the counting allocator sees during the measured loop is the signer's.

use nx_bench::sign::SignFixture;
use nx_protocol::sign::{instructions, sign};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const SIGNATURES: usize = 10_000;

fn main() {
    let fixture = SignFixture::new(1024);
    fixture.check().expect("the signer agrees with bare MD5");
    let params = fixture.params();
    let request = fixture.request(&params);
    let secret = fixture.secret();
    let mut signatures = Vec::with_capacity(SIGNATURES);

    // The counter works: a known allocation is seen.
    let region = Region::new(GLOBAL);
    let probe = std::hint::black_box(vec![0u8; 64]);
    let seen = region.change();
    drop(probe);
    assert!(
        seen.allocations >= 1,
        "the counting allocator saw nothing: {seen:?}"
    );

    let region = Region::new(GLOBAL);
    for _ in 0..SIGNATURES {
        let signature = sign(std::hint::black_box(&request), secret).expect("signs");
        signatures.push(signature);
    }
    let change = region.change();
    assert_eq!(
        (
            change.allocations,
            change.reallocations,
            change.bytes_allocated
        ),
        (0, 0, 0),
        "signing allocated: {change:?}"
    );
    assert!(signatures.iter().all(|s| *s == signatures[0]));

    // The same through `instructions`, the signer's entry point for request building, headers
    // iterated as a transport applies them.
    let region = Region::new(GLOBAL);
    let mut header_bytes = 0;
    for _ in 0..SIGNATURES {
        let signed = instructions(std::hint::black_box(&request), secret).expect("signs");
        for (name, value) in signed.headers() {
            header_bytes += std::hint::black_box(name).len() + std::hint::black_box(value).len();
        }
        assert_eq!(*signed.signature(), signatures[0]);
    }
    let change = region.change();
    assert_eq!(
        (
            change.allocations,
            change.reallocations,
            change.bytes_allocated
        ),
        (0, 0, 0),
        "signing instructions allocated: {change:?}"
    );
    assert!(header_bytes > 0);
    assert_eq!(signatures[0].as_str().len(), 32);
    println!(
        "sign_alloc: {SIGNATURES} signatures (`sign`) and {SIGNATURES} signing instructions (`instructions`) of a {} B JSON body, 0 heap allocations",
        fixture.body().len()
    );
}
