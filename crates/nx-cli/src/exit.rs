//! Exit codes, and how every failure becomes one clear message, a hint and a code.
//!
//! | code | when |
//! | --- | --- |
//! | 0 | success |
//! | 2 | usage: bad options (clap), input the library refuses before sending ([`Error::InvalidInput`]), settings that cannot be used, a file that is not what the command needs |
//! | 3 | the API answered with an error ([`Error::Response`]: an NXCloud code, a Meta error, an HTTP error status, an answer that is not valid) that is not one of authentication |
//! | 4 | network: connect, TLS, a broken connection, a timeout |
//! | 5 | integrity: size, length or SHA-256 mismatch ([`Error::Integrity`]); nothing was kept |
//! | 6 | authentication: NXCloud refused the credentials or signature (codes 1000-1099, e.g. 1003 invalid signature), or a 1004 whose clock could not be corrected ([`Error::Clock`]); On-Premises answered 401 (a refused login or token) or Meta's 1005 (access denied) |
//! | 1 | anything else (local I/O, an answer over the size limit, an archive with items that failed, ...) |
//! | 130, 143, 129 | stopped by SIGINT, SIGTERM or SIGHUP (128 + the signal's number, as a shell reports a process the signal ended: after cleaning up, `nxcloud` ends by the signal itself) |

use std::fmt;

use nx_blocking::Error;
use nx_protocol::onprem::MetaCode;
use nx_protocol::{ApiCode, ResponseError};
use serde::Serialize;

/// What the process exits with (`--json` errors name it as `kind`: [`Exit::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0.
    Success,
    /// 1: anything not listed below.
    Failure,
    /// 2: the command line or its input cannot be used.
    Usage,
    /// 3: the API answered with an error.
    Api,
    /// 4: network or timeout.
    Network,
    /// 5: downloaded bytes failed a check.
    Integrity,
    /// 6: the credentials, the signature or a token were refused.
    Auth,
    /// 128 + the signal's number: stopped by a signal.
    Signal(u8),
}

impl Exit {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Api => 3,
            Exit::Network => 4,
            Exit::Integrity => 5,
            Exit::Auth => 6,
            Exit::Signal(code) => code,
        }
    }

    /// The name `--json` gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Api => "api",
            Exit::Network => "network",
            Exit::Integrity => "integrity",
            Exit::Auth => "auth",
            Exit::Signal(_) => "interrupted",
        }
    }
}

impl Serialize for Exit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A failure as the user sees it: one line, an optional hint, an exit code.
#[derive(Debug, Clone)]
pub(crate) struct CliError {
    /// How the process exits.
    pub(crate) exit: Exit,
    /// The one-line message.
    pub(crate) message: String,
    /// What the code means or what to do, when there is more to say.
    pub(crate) hint: Option<String>,
    /// The NXCloud or Meta code, when the API answered one.
    pub(crate) api_code: Option<i64>,
    /// The HTTP status, when the server answered.
    pub(crate) http_status: Option<u16>,
}

impl CliError {
    /// A failure with this exit code and message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
            api_code: None,
            http_status: None,
        }
    }

    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Anything else (exit 1).
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// Adds a hint.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An error from building a client: the options cannot be used, so it is a usage error.
    pub(crate) fn from_settings(error: Error) -> Self {
        let mut cli = Self::from(error);
        if cli.exit == Exit::Failure {
            cli.exit = Exit::Usage;
        }
        cli
    }

    /// An error of a download from the pre-signed URL (after getMedia succeeded): as
    /// [`From`], but a redirect or an answer that is not the whole file (206, 204, ...) is said
    /// to come from the download URL, not the base URL.
    pub(crate) fn from_download(error: Error) -> Self {
        let redirect = error.status().filter(|s| s.is_redirection());
        // A download is Malformed only for a 2xx that is not 200; a getMedia (the one refresh)
        // that went wrong is Malformed on its 200, and keeps the base-URL hint.
        let not_the_file = matches!(
            &error,
            Error::Response(ResponseError::Malformed { status, .. }) if *status != http::StatusCode::OK
        );
        let mut cli = Self::from(error);
        if not_the_file {
            cli.hint = Some(
                "the download URL (NXCloud's object storage, not the base URL) did not answer 200 with the whole file: run the command again for a fresh URL; contact NXCloud support if it persists"
                    .into(),
            );
        }
        if let Some(status) = redirect {
            cli.hint = Some(format!(
                "the download URL (NXCloud's object storage, not the base URL) answered a redirect (HTTP {}), which is not followed: run the command again for a fresh URL; contact NXCloud support if it persists",
                status.as_u16()
            ));
        }
        cli
    }

    /// A local I/O failure.
    pub(crate) fn io(context: impl fmt::Display, error: std::io::Error) -> Self {
        Self::failure(format!("{context}: {error}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        let message = match &error {
            // Meta's error text comes from a server: escaped for the terminal.
            Error::Response(ResponseError::Api {
                code,
                message,
                whatsapp: Some(meta),
                ..
            }) => format!(
                "NXCloud answered code {}{}; {}",
                code.get(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(" (server said: {})", crate::terminal::escape(message))
                },
                crate::terminal::escape(&meta.to_string())
            ),
            // The library's message repeats the code's meaning, which the hint carries.
            Error::Response(ResponseError::Api { code, message, .. }) if message.is_empty() => {
                format!("NXCloud answered code {}", code.get())
            }
            Error::Response(ResponseError::Api { code, message, .. }) => {
                format!(
                    "NXCloud answered code {} (server said: {message})",
                    code.get()
                )
            }
            // Meta documents a 404 without a body as "not found" (a deleted or unknown id).
            Error::Response(ResponseError::Http { status, snippet })
                if *status == http::StatusCode::NOT_FOUND && snippet.as_str().is_empty() =>
            {
                "not found (HTTP 404 with no body)".to_owned()
            }
            _ => error.to_string(),
        };
        let exit = match &error {
            Error::InvalidInput(_) => Exit::Usage,
            Error::Clock(_) => Exit::Auth,
            Error::Response(response) if is_auth(response) => Exit::Auth,
            Error::Response(_) => Exit::Api,
            Error::Timeout { .. }
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Transport { .. } => Exit::Network,
            Error::Integrity(_) => Exit::Integrity,
            _ => Exit::Failure,
        };
        let mut cli = CliError::new(exit, message);
        cli.http_status = error.status().map(|s| s.as_u16());
        if let Error::Tls { .. } = &error {
            cli.hint = Some(TLS_HINT.into());
        }
        if let Error::Response(response) = &error {
            cli.hint = Some(response_hint(response));
            cli.api_code = match response {
                ResponseError::Api { code, .. } => Some(code.get()),
                ResponseError::OnPrem { error, .. } => Some(error.code.get()),
                _ => None,
            };
        }
        cli
    }
}

/// Whether an error answer refused the credentials: NXCloud's authentication codes
/// (1000-1099), an On-Premises 401 (a refused login or token, whatever its body) or Meta's
/// 1005 (access denied).
fn is_auth(response: &ResponseError) -> bool {
    match response {
        ResponseError::Api { code, .. } => code.is_auth(),
        ResponseError::OnPrem { status, error } => {
            *status == http::StatusCode::UNAUTHORIZED || error.code == MetaCode::ACCESS_DENIED
        }
        ResponseError::Http { status, .. } => *status == http::StatusCode::UNAUTHORIZED,
        _ => false,
    }
}

/// What to do about a certificate the client did not trust.
pub(crate) const TLS_HINT: &str = "if the server's certificate is signed by a private CA, trust that CA with --ca-bundle PATH (or NXCLOUD_CA_BUNDLE); --root-store native trusts the operating system's store";

/// The same for an On-Premises installation, which ships a self-signed certificate by default.
pub(crate) const ONPREM_TLS_HINT: &str = "WhatsApp On-Premises installations ship a self-signed certificate by default: trust it (or the CA that signed yours) with --ca-bundle PATH (or NXCLOUD_CA_BUNDLE)";

/// What an error answer means and what to do about it.
fn response_hint(response: &ResponseError) -> String {
    match response {
        ResponseError::Api { code, .. } if *code == ApiCode::INVALID_SIGNATURE => format!(
            "code {} means {}; compare what your code signs with `nxcloud sign --explain` (see the README)",
            code.get(),
            code.meaning()
        ),
        ResponseError::Api { code, .. } => format!("code {} means {}", code.get(), code.meaning()),
        // Meta answers a refused login or token with 1005 on a 401; a 403 is a permission.
        ResponseError::OnPrem { status, error }
            if error.code == MetaCode::ACCESS_DENIED && *status == http::StatusCode::UNAUTHORIZED =>
        {
            "the user name and password, or the token, were refused (a wrong password, or a token that is invalid, revoked or expired): check them, or log in again with `nxcloud onprem --username U --password P login`".to_owned()
        }
        ResponseError::OnPrem { error, .. } => {
            format!("code {} means {}", error.code.get(), error.code.meaning())
        }
        ResponseError::Http { status, .. } => match status.as_u16() {
            300..=399 => "the server answered a redirect, which is not followed: check the base URL (--base-url or --url; e.g. https:// where http:// was given)".into(),
            401 => "the credentials or token were refused: log in again or check them".into(),
            403 => "access was refused: a download URL may have expired (run the command again) or the account lacks access".into(),
            404 => "not found: the id is unknown or was deleted (or the base URL does not point at the API)".into(),
            413 => "the request was too large for the server".into(),
            s if s >= 500 => "the server failed: retry later".into(),
            _ => "the server did not answer with the API's answer: check the base URL".into(),
        },
        ResponseError::Malformed { .. } => {
            "the answer does not have the API's shape: check that the base URL points at the API"
                .into()
        }
        _ => "see the message".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nx_protocol::download::{IntegrityError, Sha256Digest};
    use nx_protocol::{ApiCode, InvalidInput};

    #[test]
    fn error_kinds_map_to_their_exit_codes() {
        let api = Error::Response(ResponseError::Api {
            code: ApiCode::new(-1),
            message: "media not found".into(),
            status: http::StatusCode::OK,
            whatsapp: None,
        });
        let cli = CliError::from(api);
        assert_eq!(cli.exit.code(), 3);
        assert_eq!(cli.api_code, Some(-1));
        assert_eq!(
            cli.message,
            "NXCloud answered code -1 (server said: media not found)"
        );
        assert!(
            cli.hint
                .unwrap()
                .starts_with("code -1 means request failed")
        );

        let timeout = Error::Timeout {
            phase: nx_protocol::call::Phase::Connect,
            limit: nx_protocol::call::Limit::Call,
            after: std::time::Duration::from_secs(1),
            host: Some("127.0.0.1:8443".into()),
            proxy: Some("127.0.0.1:3128".into()),
        };
        let cli = CliError::from(timeout);
        assert_eq!(cli.exit.code(), 4);
        // The message names who stalled: the server, and the proxy in between.
        assert_eq!(
            cli.message,
            "timed out connecting to 127.0.0.1:8443 through proxy 127.0.0.1:3128: the call's deadline (overall_timeout) of 1s passed; the server or network is slow or stalled; retry later or raise the timeout"
        );

        let integrity = Error::Integrity(IntegrityError::Sha256Mismatch {
            expected: Sha256Digest::of(b"a"),
            actual: Sha256Digest::of(b"b"),
        });
        assert_eq!(CliError::from(integrity).exit.code(), 5);

        let input = Error::InvalidInput(InvalidInput::EmptyFile);
        assert_eq!(CliError::from(input).exit.code(), 2);

        // A 206 from the download URL is the storage's doing, not the base URL's.
        let partial = || {
            Error::Response(ResponseError::Malformed {
                status: http::StatusCode::PARTIAL_CONTENT,
                what: "a media download must be answered 200 with the whole file".into(),
                snippet: nx_protocol::Snippet::of(b""),
            })
        };
        let hint = CliError::from_download(partial()).hint.unwrap();
        assert!(hint.starts_with("the download URL"), "{hint}");
        assert!(
            CliError::from(partial())
                .hint
                .unwrap()
                .contains("base URL points")
        );

        let meta = nx_protocol::wa::WhatsAppError::from_data(
            r#"{"error":{"code":131026,"message":"undeliverable\u001b[2J","fbtrace_id":"T1"}}"#,
        )
        .map(Box::new);
        let whatsapp = CliError::from(Error::Response(ResponseError::Api {
            code: ApiCode::WHATSAPP_ERROR,
            message: "WhatsApp error".into(),
            status: http::StatusCode::OK,
            whatsapp: meta,
        }));
        assert_eq!(whatsapp.exit.code(), 3);
        assert_eq!(whatsapp.api_code, Some(9099));
        assert_eq!(
            whatsapp.message,
            "NXCloud answered code 9099 (server said: WhatsApp error); WhatsApp error 131026: undeliverable\\u{1b}[2J (fbtrace_id T1)"
        );

        // Refused credentials: 6, whichever API refused them.
        let signature = CliError::from(Error::Response(ResponseError::Api {
            code: ApiCode::INVALID_SIGNATURE,
            message: "invalid signature".into(),
            status: http::StatusCode::OK,
            whatsapp: None,
        }));
        assert_eq!((signature.exit.code(), signature.exit.name()), (6, "auth"));
        let clock = Error::Clock(nx_protocol::policy::clock::ClockError::NoDate);
        assert_eq!(CliError::from(clock).exit, Exit::Auth);
        let unauthorized = Error::Response(ResponseError::Http {
            status: http::StatusCode::UNAUTHORIZED,
            snippet: nx_protocol::Snippet::of(b""),
        });
        assert_eq!(CliError::from(unauthorized).exit.code(), 6);
        assert_eq!(Exit::Signal(143).code(), 143);

        let io = Error::io("reading x", std::io::Error::other("boom"));
        assert_eq!(CliError::from(io).exit.code(), 1);
        let config = Error::Config("no".into());
        assert_eq!(CliError::from_settings(config).exit.code(), 2);
    }
}
