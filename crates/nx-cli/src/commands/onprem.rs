//! `nxcloud onprem ...`: WhatsApp Business On-Premises media.

use crate::args::{GlobalArgs, OnPremArgs};
use crate::exit::CliError;
use crate::output::Output;

/// Runs `nxcloud onprem ...`.
pub(crate) fn run(_global: &GlobalArgs, _args: &OnPremArgs, _out: Output) -> Result<(), CliError> {
    Err(CliError::failure(
        "the On-Premises commands are not built yet",
    ))
}
