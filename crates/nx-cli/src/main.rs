//! The `nxcloud` command: sign NXCloud requests, upload, fetch, verify and delete WhatsApp media
//! through NXCloud or a WhatsApp Business On-Premises installation, parse webhook bodies, and run
//! the local sandbox or a demo of the whole media lifecycle.
//!
//! Built on `nx-blocking` (no async runtime; the sandbox runs its own), except the bulk
//! archive (`media archive`, `onprem media export`), which runs `nx-archive` on `nx-async` in a
//! runtime of its own. Modules: [`args`] (the
//! command line), [`commands`] (one module per command), [`exit`] (exit codes and error
//! messages), [`output`] (stdout/stderr, text or JSON), and helpers for signing stages
//! ([`explain`]), upload types ([`mime`]), progress bars ([`progress`]), logging ([`logging`]),
//! clients ([`clients`]), the demo's sample image ([`sample`]), and escaping and quoting for
//! the terminal ([`terminal`]), download targets ([`target`]) and their clean-up on a signal
//! ([`interrupt`]), capped reading of inputs ([`input`]), and secrets read from files or
//! stdin ([`secrets`]).
//!
//! No cargo features of its own; it builds `nx-blocking` and `nx-async` with `native-roots`, so
//! that `--root-store native` works.
#![forbid(unsafe_code)]

mod args;
mod clients;
mod commands;
mod exit;
mod explain;
mod input;
mod interrupt;
mod logging;
mod mime;
mod output;
mod progress;
mod sample;
mod secrets;
mod target;
mod terminal;

use std::process::ExitCode;

use crate::args::Cli;
use crate::exit::Exit;
use crate::output::Output;

fn main() -> ExitCode {
    let mut cli = match Cli::parse_args() {
        Ok(cli) => cli,
        // `--json` promises errors as one JSON line on stderr: usage errors clap finds too.
        Err(e) if e.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            let error = exit::CliError::usage(message).with_hint("run with --help for the usage");
            Output::new(true).error(&error);
            return ExitCode::from(error.exit.code());
        }
        // A usage error: printed without the options that came from the environment.
        Err(e) if e.use_stderr() => {
            // Not `eprint!`, which panics when stderr is a closed pipe.
            let text = args::usage_without_environment(&e.render().to_string());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
            return ExitCode::from(Exit::Usage.code());
        }
        // clap prints and exits 0 for --help and --version.
        Err(e) => e.exit(),
    };
    logging::init(cli.global.verbose);
    let out = Output::new(cli.global.json);
    match secrets::resolve(&mut cli).and_then(|()| commands::run(&cli, out)) {
        Ok(()) => ExitCode::from(Exit::Success.code()),
        Err(error) => {
            out.error(&error);
            if let Exit::Signal(code) = error.exit {
                // Stopped cleanly by a signal (the archive): end by it, as the shell expects.
                interrupt::die_by(code);
            }
            ExitCode::from(error.exit.code())
        }
    }
}
