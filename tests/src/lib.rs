//! Shared conformance cases, run against every transport (see `tests/tests/`).
#![forbid(unsafe_code)]
