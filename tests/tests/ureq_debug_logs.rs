//! ureq logs through the `log` crate. At TRACE it dumps the wire (secrets included: see
//! `secrets.rs`'s ignored test and RELIABILITY.md); at DEBUG and below it redacts paths, queries
//! and sensitive headers. This pins the second half: with a logger at DEBUG, the blocking
//! client's calls (a signed getMedia, a pre-signed download, an On-Premises Basic login and
//! Bearer calls) leave no secret in any `log` record. A test binary of its own, because a `log`
//! logger is process-wide.

use std::sync::Mutex;

use nx_conformance::{
    BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver, OnPremWorld, PNG_1X1, Source, World,
};
use nx_sandbox::{DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE as PHONE, DEMO_ONPREM_PASSWORD};

static RECORDS: Mutex<String> = Mutex::new(String::new());

struct Records;

impl log::Log for Records {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {} {}\n", record.level(), record.target(), record.args());
            RECORDS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&line);
        }
    }
    fn flush(&self) {}
}

#[test]
fn ureq_debug_records_carry_no_secret() {
    log::set_logger(&Records).expect("the only logger in this test binary");
    log::set_max_level(log::LevelFilter::Debug);

    let world = World::<BlockingDriver>::new();
    let id = world
        .client
        .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    let info = world.client.get_media(PHONE, &id).unwrap();
    world.client.download(&info, None).unwrap();
    let query = info
        .url()
        .expose()
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap();

    let onprem = OnPremWorld::<BlockingDriverOnPrem>::new();
    let token = onprem.client.login().unwrap();
    onprem.client.retry_download("missing").ok();

    let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(records.contains("ureq"), "ureq logged at DEBUG: {records}");
    for (what, secret) in [
        ("the access secret", DEMO_ACCESS_SECRET),
        ("the download URL's query", query.as_str()),
        ("the On-Prem password", DEMO_ONPREM_PASSWORD),
        ("the On-Prem token", token.expose()),
        ("the Basic credentials", "YWRtaW46ZGVtby1wYXNzd29yZA=="),
    ] {
        assert!(
            !records.contains(secret),
            "{what} appears in ureq's DEBUG records"
        );
    }
    assert!(
        !records.contains("sign:"),
        "a sign header appears in ureq's DEBUG records"
    );
}
