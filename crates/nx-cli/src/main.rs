//! The `nxcloud` command: sign NXCloud requests, upload, fetch, verify and delete WhatsApp media
//! through NXCloud or a WhatsApp Business On-Premises installation, parse webhook bodies, and run
//! the local sandbox or a demo of the whole media lifecycle.
//!
//! Built on `nx-blocking` (no async runtime; the sandbox runs its own). Modules: [`args`] (the
//! command line), [`commands`] (one module per command), [`exit`] (exit codes and error
//! messages), [`output`] (stdout/stderr, text or JSON), and helpers for signing stages
//! ([`explain`]), upload types ([`mime`]), progress bars ([`progress`]), logging ([`logging`]),
//! clients ([`clients`]) and the demo's sample image ([`sample`]).
#![forbid(unsafe_code)]

mod args;
mod clients;
mod commands;
mod exit;
mod explain;
mod logging;
mod mime;
mod output;
mod progress;
mod sample;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::exit::Exit;
use crate::output::Output;

fn main() -> ExitCode {
    // clap exits 2 on a usage error, 0 for --help and --version.
    let cli = Cli::parse();
    logging::init(cli.global.verbose);
    let out = Output::new(cli.global.json);
    match commands::run(&cli, out) {
        Ok(()) => ExitCode::from(Exit::Success.code()),
        Err(error) => {
            out.error(&error);
            ExitCode::from(error.exit.code())
        }
    }
}
