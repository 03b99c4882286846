//! Clients built from the global options: credentials, base URL, `--timeout`, and the network
//! settings (`--ca-bundle`, `--root-store`, `--proxy`/`--no-proxy`, `--allow-insecure-http`).
//! The settings go onto a builder of either transport (`nx-blocking` for the single-file
//! commands, `nx-async` for the archive), so both read the options alike.

use std::time::Duration;

use nx_blocking::{Client, OnPremClient};
use nx_protocol::AccessSecret;
use nx_protocol::config::{
    ClientBuilder, ClientConfig, ENV_ACCESS_KEY, ENV_ACCESS_SECRET, ENV_ONPREM_TOKEN,
    ENV_ONPREM_URL, FromConfig, OnPremBuilder, OnPremConfig, RootStore, TransportConfig,
    certificates_from_pem,
};
use nx_protocol::proxy::{ProxyConfig, ProxyRules, ProxyUrl};

use crate::args::{
    ENV_CA_BUNDLE, ENV_ONPREM_PASSWORD, ENV_ONPREM_USERNAME, GlobalArgs, OnPremArgs, RootStoreArg,
};
use crate::exit::CliError;
use crate::output;

/// The network settings of the global options, checked: applied to every client a command
/// builds.
#[derive(Debug)]
pub(crate) struct Network {
    roots_der: Vec<Vec<u8>>,
    root_store: RootStore,
    proxy: Option<ProxyConfig>,
    allow_insecure_http: bool,
}

impl Network {
    /// Reads `--ca-bundle` (an unreadable file, or one without a certificate, is a usage error
    /// naming it) and `--proxy`; warns on stderr about `--allow-insecure-http`.
    pub(crate) fn of(global: &GlobalArgs) -> Result<Self, CliError> {
        let roots_der = match &global.ca_bundle {
            None => Vec::new(),
            Some(path) => {
                let shown = path.display();
                let pem = std::fs::read(path).map_err(|e| {
                    CliError::usage(format!("--ca-bundle {shown}: cannot read it: {e}"))
                })?;
                certificates_from_pem(&pem).map_err(|e| {
                    CliError::usage(format!("--ca-bundle {shown}: {e}"))
                        .with_hint(format!("give a file of PEM certificates (-----BEGIN CERTIFICATE-----), with --ca-bundle or {ENV_CA_BUNDLE}"))
                })?
            }
        };
        let proxy = if global.no_proxy {
            Some(ProxyConfig::Off)
        } else {
            match &global.proxy {
                // The message never repeats the URL: it may hold a password.
                Some(url) => Some(ProxyConfig::Rules(ProxyRules::all(
                    ProxyUrl::parse(url).map_err(|e| CliError::usage(format!("--proxy: {e}")))?,
                ))),
                None => None,
            }
        };
        if global.allow_insecure_http {
            let warning = "--allow-insecure-http: plain http:// to a host that is not loopback sends credentials and media unencrypted";
            if global.json {
                output::note(
                    &crate::terminal::json_line(&serde_json::json!({ "warning": warning }))
                        .unwrap_or_default(),
                );
            } else {
                output::note(&format!("warning: {warning}"));
            }
        }
        Ok(Self {
            roots_der,
            root_store: match global.root_store {
                RootStoreArg::Webpki => RootStore::Webpki,
                RootStoreArg::Native => RootStore::Native,
            },
            proxy,
            allow_insecure_http: global.allow_insecure_http,
        })
    }

    /// Puts these settings into a client's transport settings; without `--proxy` or
    /// `--no-proxy` the library reads the environment.
    pub(crate) fn apply(&self, transport: &mut TransportConfig) {
        transport
            .extra_roots_der
            .extend(self.roots_der.iter().cloned());
        transport.root_store = self.root_store;
        transport.allow_insecure_http = self.allow_insecure_http;
        if let Some(proxy) = &self.proxy {
            transport.proxy = proxy.clone();
        }
    }
}

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
                "no access secret: pass --access-secret-file, set {ENV_ACCESS_SECRET} or pass --access-secret"
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
    nxcloud_with(global, Client::builder())
}

/// An NXCloud client of `builder`'s transport for the global options.
pub(crate) fn nxcloud_with<C: FromConfig<ClientConfig>>(
    global: &GlobalArgs,
    builder: ClientBuilder<C>,
) -> Result<C, CliError> {
    let (key, secret) = credentials(global)?;
    let network = Network::of(global)?;
    let mut builder = builder
        .credentials(key, secret.expose())
        .transport(|t| network.apply(t));
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
    onprem_with(global, args, OnPremClient::builder())
}

/// An On-Premises client of `builder`'s transport for `nxcloud onprem`'s options.
pub(crate) fn onprem_with<C: FromConfig<OnPremConfig>>(
    global: &GlobalArgs,
    args: &OnPremArgs,
    builder: OnPremBuilder<C>,
) -> Result<C, CliError> {
    let url = args
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            CliError::usage(format!(
                "no On-Premises URL: pass --url or set {ENV_ONPREM_URL}"
            ))
        })?;
    let network = Network::of(global)?;
    let mut builder = builder.base_url(url).transport(|t| network.apply(t));
    let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    builder = match (nonempty(&args.username), nonempty(&args.password)) {
        (Some(user), Some(password)) => builder.password(user, password),
        _ => match nonempty(&args.token) {
            Some(token) => builder.token(token),
            None => {
                return Err(CliError::usage(format!(
                    "no On-Premises login: pass --username and --password-file or --password ({ENV_ONPREM_USERNAME}, {ENV_ONPREM_PASSWORD}), or --token-file or --token ({ENV_ONPREM_TOKEN})"
                )));
            }
        },
    };
    if let Some(limit) = time_limit(global) {
        builder = builder.time_limit(limit);
    }
    builder.build().map_err(CliError::from_settings)
}
