//! One module per command; [`run`] dispatches.

pub(crate) mod archive;
pub(crate) mod demo;
pub(crate) mod media;
pub(crate) mod onprem;
pub(crate) mod sandbox;
pub(crate) mod sign;
pub(crate) mod webhook;

use crate::args::{Cli, Command};
use crate::exit::{self, CliError};
use crate::output::Output;

/// Runs the command `cli` names.
pub(crate) fn run(cli: &Cli, out: Output) -> Result<(), CliError> {
    let global = &cli.global;
    match &cli.command {
        Command::Sign(args) => sign::run(global, args, out),
        Command::Media(command) => media::run(global, command, out),
        Command::Onprem(args) => onprem::run(global, args, out).map_err(|e| {
            if e.hint.as_deref() == Some(exit::TLS_HINT) {
                e.with_hint(exit::ONPREM_TLS_HINT)
            } else {
                e
            }
        }),
        Command::Webhook(command) => webhook::run(command, out),
        Command::Sandbox(args) => sandbox::run(global, args, out),
        Command::Demo => demo::run(global, out),
    }
}
