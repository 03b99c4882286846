//! Async client for NXCloud's WhatsApp media API, on hyper 1 and tokio.
//!
//! A thin driver: signing, request building, answer parsing and retry policy live in
//! [`nx-protocol`](https://docs.rs/nx-protocol); this crate only does the I/O around them.
#![forbid(unsafe_code)]
