//! Benchmarks of the NXCloud SDK against the raw HTTP stacks it is built on.
//!
//! Each item of `BENCHMARKS.md` is a function here that returns a [`report::Section`]; the
//! `nx-bench` binary runs them (`nx-bench sign|async|blocking|download|upload|sandbox|archive|peers-*`) and prints
//! Markdown, and the smoke test runs every one with tiny sizes. Every figure is a ratio against
//! a baseline measured in the same run, runs interleaved, medians over repeated runs.
//!
//! Servers run in a child process (`nx-bench serve`), and transfers in a child process per run
//! (`nx-bench child ...`), so CPU time and peak resident memory (`VmHWM`) are the client's own.

pub mod archive;
pub mod child;
pub mod fixtures;
pub mod hand;
pub mod peers;
pub mod procfs;
pub mod report;
pub mod requests;
pub mod sandbox;
pub mod server;
pub mod sign;
pub mod transfer;
