//! Clients built from the global options: credentials, base URL, `--timeout`.

use std::time::Duration;

use nx_blocking::{Client, OnPremClient};
use nx_protocol::AccessSecret;
use nx_protocol::client::{ENV_ACCESS_KEY, ENV_ACCESS_SECRET, ENV_ONPREM_TOKEN, ENV_ONPREM_URL};

use crate::args::{ENV_ONPREM_PASSWORD, ENV_ONPREM_USERNAME, GlobalArgs, OnPremArgs};
use crate::exit::CliError;

/// The access key and secret, or a usage error naming the option and the variable.
pub(crate) fn credentials(global: &GlobalArgs) -> Result<(String, AccessSecret), CliError> {
    let key = global
        .access_key
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            CliError::usage(format!(
                "no access key: pass --access-key or set {ENV_ACCESS_KEY}"
            ))
        })?;
    let secret = global
        .access_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(AccessSecret::new)
        .ok_or_else(|| {
            CliError::usage(format!(
                "no access secret: pass --access-secret or set {ENV_ACCESS_SECRET}"
            ))
        })?;
    Ok((key, secret))
}

/// The limit `--timeout` asks for: the whole call, each attempt capped to it (the builders'
/// `time_limit`).
pub(crate) fn time_limit(global: &GlobalArgs) -> Option<Duration> {
    global.timeout.map(Duration::from_secs)
}

/// An NXCloud client for the global options.
pub(crate) fn nxcloud(global: &GlobalArgs) -> Result<Client, CliError> {
    let (key, secret) = credentials(global)?;
    let mut builder = Client::builder().credentials(key, secret.expose());
    if let Some(url) = &global.base_url {
        builder = builder.base_url(url);
    }
    if let Some(limit) = time_limit(global) {
        builder = builder.time_limit(limit);
    }
    builder.build().map_err(CliError::from_settings)
}

/// An On-Premises client for `nxcloud onprem`'s options: a user name and password when given
/// (they take precedence), else a token.
pub(crate) fn onprem(global: &GlobalArgs, args: &OnPremArgs) -> Result<OnPremClient, CliError> {
    let url = args
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            CliError::usage(format!(
                "no On-Premises URL: pass --url or set {ENV_ONPREM_URL}"
            ))
        })?;
    let mut builder = OnPremClient::builder().base_url(url);
    let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    builder = match (nonempty(&args.username), nonempty(&args.password)) {
        (Some(user), Some(password)) => builder.password(user, password),
        _ => match nonempty(&args.token) {
            Some(token) => builder.token(token),
            None => {
                return Err(CliError::usage(format!(
                    "no On-Premises login: pass --username and --password ({ENV_ONPREM_USERNAME}, {ENV_ONPREM_PASSWORD}) or --token ({ENV_ONPREM_TOKEN})"
                )));
            }
        },
    };
    if let Some(limit) = time_limit(global) {
        builder = builder.time_limit(limit);
    }
    builder.build().map_err(CliError::from_settings)
}
