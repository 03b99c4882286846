//! `nxcloud sandbox`: runs `nx_sandbox::Sandbox` in the foreground until Ctrl-C or SIGTERM.
//!
//! The first stdout line is exactly `listening on http://ADDR` (`https://` with `--tls`; flushed
//! at once, so a script can wait for it); with `--tls` the second is `CA certificate: PATH`, the
//! throwaway CA's PEM file (removed when the sandbox stops) to pass to `--ca-bundle`; then how
//! to reach it, then one line per request the sandbox answers. With `--json` every line is a
//! JSON object: first `{"listening":"http://ADDR","ca_certificate":PATH or null,...}`, then one
//! per request. A small current-thread tokio runtime waits for the signal
//! (the sandbox serves on its own runtime and thread) and stops it gracefully, which removes its
//! temporary media directory.

use std::net::SocketAddr;
use std::time::Duration;

use nx_protocol::wa::validate_phone;
use nx_sandbox::{
    Account, DEMO_ACCESS_KEY, DEMO_APPKEY, DEMO_BUSINESS_PHONE, DEMO_ONPREM_USER, LogEntry,
    RequestLog, Sandbox, SandboxConfig, SandboxError,
};
use serde_json::json;

use crate::args::{GlobalArgs, SandboxArgs};
use crate::clients;
use crate::exit::CliError;
use crate::output::{self, Output};
use crate::terminal::shown;

/// How often the request log is checked for new entries.
const LOG_POLL: Duration = Duration::from_millis(200);

/// The sandbox's settings for these options: the demo account, plus the account of
/// `--access-key`/`--access-secret` when given, each bound to the `--phone` numbers.
pub(crate) fn config(global: &GlobalArgs, args: &SandboxArgs) -> Result<SandboxConfig, CliError> {
    if !args.addr.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "the sandbox listens on loopback addresses only (127.0.0.1, [::1]); got {}",
            args.addr
        )));
    }
    let phones: Vec<String> = if args.phones.is_empty() {
        vec![DEMO_BUSINESS_PHONE.to_owned()]
    } else {
        args.phones.clone()
    };
    for phone in &phones {
        validate_phone(phone).map_err(|e| CliError::usage(format!("--phone {phone}: {e}")))?;
    }
    let bind = |account: Account| phones.iter().fold(account, |a, p| a.phone(p.clone()));
    let mut demo = Account::demo();
    if !args.phones.is_empty() {
        demo = bind(demo);
    }
    let mut accounts = vec![demo];
    if global.access_key.is_some() || global.access_secret.is_some() {
        let (key, secret) = clients::credentials(global)?;
        if key != DEMO_ACCESS_KEY {
            accounts.push(bind(Account::new(key, secret.expose()).appkey(DEMO_APPKEY)));
        }
    }
    let mut config = SandboxConfig::new()
        .bind(args.addr)
        .accounts(accounts)
        .tls(args.tls);
    if let Some(url) = &args.webhook {
        config = config.webhook_url(url.clone());
    }
    if let Some(url) = &args.onprem_callback {
        config = config.onprem_callback_url(url.clone());
    }
    Ok(config)
}

/// A sandbox start failure: bad settings are usage errors, the rest (e.g. the port is taken)
/// exit 1. `addr` is the address it was to listen on, named when binding failed.
pub(crate) fn start_error(error: SandboxError, addr: Option<SocketAddr>) -> CliError {
    match (&error, addr) {
        (SandboxError::Config(_), _) => CliError::usage(error.to_string()),
        (SandboxError::Io { source, .. }, Some(addr))
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            CliError::failure(format!(
                "cannot listen on {addr}: the address is already in use"
            ))
            .with_hint("stop what listens there, or pass another --addr (port 0 picks a free one)")
        }
        (SandboxError::Io { .. }, Some(addr)) => {
            CliError::failure(format!("cannot start the sandbox on {addr}: {error}"))
        }
        _ => CliError::failure(error.to_string()),
    }
}

/// Runs `nxcloud sandbox`.
pub(crate) fn run(global: &GlobalArgs, args: &SandboxArgs, out: Output) -> Result<(), CliError> {
    let config = config(global, args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the signal handler", e))?;
    let sandbox = Sandbox::start(config).map_err(|e| start_error(e, Some(args.addr)))?;
    let base = sandbox.base_url().to_owned();
    // Kept until the sandbox stops, then removed with it.
    let ca_file = sandbox.ca_pem().map(write_ca).transpose()?;
    let ca_path = ca_file.as_ref().map(|f| f.path().display().to_string());
    let mut accounts = vec![DEMO_ACCESS_KEY.to_owned()];
    if let Some(key) = global.access_key.as_ref().filter(|k| *k != DEMO_ACCESS_KEY) {
        accounts.push(key.clone());
    }
    let phones = if args.phones.is_empty() {
        vec![DEMO_BUSINESS_PHONE.to_owned()]
    } else {
        args.phones.clone()
    };
    let inbound = format!("{base}/_sandbox/inbound?type=image&mime=image/jpeg");
    if out.is_json() {
        // One JSON object first (then one per request), so a script reads every line as JSON.
        out.json(&json!({
            "listening": base,
            "ca_certificate": ca_path,
            "nxcloud": { "base_url": base, "access_keys": accounts, "phones": phones, "appkey": DEMO_APPKEY },
            "onprem": { "url": base, "user": DEMO_ONPREM_USER },
            "inbound": inbound,
        }))?;
    } else {
        output::stdout_line(&format!("listening on {base}"))?;
        let trust = match &ca_path {
            Some(path) => {
                output::stdout_line(&format!("CA certificate: {path}"))?;
                format!(" --ca-bundle {path}")
            }
            None => String::new(),
        };
        output::stdout_line(&format!(
            "NXCloud:     --base-url {base}{trust}, access keys {} (secrets not shown), phones {}, appkey {DEMO_APPKEY}\n\
             On-Premises: --url {base}{trust}, user {DEMO_ONPREM_USER} (password not shown)\n\
             inbound:     POST {inbound} with the file's bytes\n\
             stop with Ctrl-C",
            accounts.join(", "),
            phones.join(", ")
        ))?;
    }
    let log = sandbox.log().clone();
    runtime.block_on(async move {
        tokio::select! {
            () = sandbox.run_until(shutdown_signal()) => {}
            () = follow_log(log, out) => {}
        }
    });
    output::note("sandbox stopped");
    drop(ca_file);
    Ok(())
}

/// The CA's PEM in a new file of the temporary directory.
fn write_ca(pem: &str) -> Result<tempfile::NamedTempFile, CliError> {
    use std::io::Write as _;
    let mut file = tempfile::Builder::new()
        .prefix("nxcloud-sandbox-ca-")
        .suffix(".pem")
        .tempfile()
        .map_err(|e| CliError::io("creating the CA certificate's file", e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| CliError::io("writing the CA certificate's file", e))?;
    Ok(file)
}

/// Prints each new log entry, forever.
async fn follow_log(log: RequestLog, out: Output) {
    let mut seen = 0;
    let mut tick = tokio::time::interval(LOG_POLL);
    loop {
        tick.tick().await;
        if log.last().is_none_or(|last| last.seq <= seen) {
            continue;
        }
        let fresh: Vec<LogEntry> = log.entries().into_iter().filter(|e| e.seq > seen).collect();
        for entry in fresh {
            seen = entry.seq;
            let _ = print_entry(&entry, out);
        }
    }
}

fn print_entry(entry: &LogEntry, out: Output) -> Result<(), CliError> {
    let value = json!({
        "seq": entry.seq,
        "route": entry.route.name(),
        "method": entry.method,
        "path": entry.path,
        "action": entry.action,
        "status": entry.status,
        "code": entry.code,
        "latency_ms": entry.latency.as_millis() as u64,
        "fault": entry.fault,
        "note": entry.note,
    });
    // Paths and notes come from clients: escaped, one line per entry.
    out.result(&value, |_| shown(&entry.to_string()).to_string())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
