//! The command line: every command, option and environment variable, as clap reads them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{
    ArgAction, ArgGroup, Args, ColorChoice, CommandFactory, FromArgMatches, Parser, Subcommand,
    ValueEnum,
};
use nx_protocol::config::{
    ENV_ACCESS_KEY, ENV_ACCESS_SECRET, ENV_APPKEY, ENV_BASE_URL, ENV_ONPREM_TOKEN, ENV_ONPREM_URL,
};
use nx_protocol::download::Sha256Digest;
use nx_protocol::wa::MediaKind;

/// Environment variable for `--ca-bundle`.
pub(crate) const ENV_CA_BUNDLE: &str = "NXCLOUD_CA_BUNDLE";
/// Environment variable for `--root-store`.
pub(crate) const ENV_ROOT_STORE: &str = "NXCLOUD_ROOT_STORE";

/// Environment variable for the On-Premises user name.
pub(crate) const ENV_ONPREM_USERNAME: &str = "WA_ONPREM_USERNAME";
/// Environment variable for the On-Premises password.
pub(crate) const ENV_ONPREM_PASSWORD: &str = "WA_ONPREM_PASSWORD";
/// Environment variable for the new password of an On-Premises first login.
pub(crate) const ENV_ONPREM_NEW_PASSWORD: &str = "WA_ONPREM_NEW_PASSWORD";

const AFTER_HELP: &str = "\
Exit codes: 0 success, 2 usage (bad options, input refused before sending), 3 the API answered \
with an error code, 4 network or timeout, 5 integrity mismatch (nothing kept), 6 credentials or \
token refused, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP, 1 anything else.

Try it without an account: `nxcloud demo`; or run `nxcloud sandbox` and point the other commands \
at it with --base-url and the sandbox's demo account (see the README).";

impl Cli {
    /// Parses the process's arguments, with help and usage errors styled only where
    /// [`help_color`] allows.
    pub(crate) fn parse_args() -> Result<Cli, clap::Error> {
        let mut command = Cli::command().color(help_color());
        let mut matches = command.try_get_matches_from_mut(std::env::args_os())?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
    }
}

/// How clap may style help and usage errors. Its `Auto` styles any terminal while `CI` is set,
/// even one with `TERM=dumb`; ours never styles a dumb terminal (as progress bars, see
/// [`crate::terminal::stderr_draws_progress`]), unless `CLICOLOR_FORCE` asks for it. `NO_COLOR`
/// and the rest are left to clap's `Auto`.
fn help_color() -> ColorChoice {
    let dumb = crate::terminal::term_is_dumb();
    let forced = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
    if dumb && !forced {
        ColorChoice::Never
    } else {
        ColorChoice::Auto
    }
}

/// `nxcloud`: sign, upload, fetch, verify and delete WhatsApp media through NXCloud, drive a
/// WhatsApp Business On-Premises installation's media endpoints, and run the local sandbox.
#[derive(Debug, Parser)]
#[command(name = "nxcloud", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes (they may be given before or after the command's name).
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// NXCloud's base URL [default: `https://api2.nxcloud.com`].
    #[arg(long, global = true, env = ENV_BASE_URL, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// The account's access key.
    #[arg(long, global = true, env = ENV_ACCESS_KEY, value_name = "KEY")]
    pub(crate) access_key: Option<String>,
    /// The account's access secret (never printed; prefer --access-secret-file or the
    /// environment variable: command lines are visible to other users of the machine).
    #[arg(
        long,
        global = true,
        env = ENV_ACCESS_SECRET,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) access_secret: Option<String>,
    /// Read the access secret from this file (`-` for stdin): its one line, a trailing
    /// newline removed.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "access_secret"
    )]
    pub(crate) access_secret_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (and errors as one JSON line on stderr).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The longest one call may take, retries and media transfers included [default: 120,
    /// plus a transfer's size at 256 KiB/s]; each attempt's connect (10 s) and answer (30 s)
    /// limits are capped to it. A media body slower than 1 B/s over 20 s fails sooner.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub(crate) timeout: Option<u64>,
    /// Also trust the PEM certificates in this file (one or more: a private CA, an On-Premises
    /// installation's self-signed certificate) for every connection the command makes.
    #[arg(long, global = true, env = ENV_CA_BUNDLE, value_name = "PATH")]
    pub(crate) ca_bundle: Option<PathBuf>,
    /// The built-in roots: Mozilla's as webpki-roots ships them (the same on every machine), or
    /// the operating system's store (with what a company added to it).
    #[arg(
        long,
        global = true,
        env = ENV_ROOT_STORE,
        value_enum,
        default_value_t = RootStoreArg::Webpki,
        value_name = "STORE"
    )]
    pub(crate) root_store: RootStoreArg,
    /// Allow plain http:// to a host that is not loopback: credentials and media then travel
    /// unencrypted (a warning says so on every run).
    #[arg(long, global = true)]
    pub(crate) allow_insecure_http: bool,
    /// Tunnel every connection through this HTTP proxy (`http://[USER:PASS@]HOST[:PORT]`, HTTP
    /// CONNECT) [default: from https_proxy, HTTPS_PROXY, http_proxy, ALL_PROXY and NO_PROXY, as
    /// curl reads them].
    #[arg(long, global = true, value_name = "URL", conflicts_with = "no_proxy")]
    pub(crate) proxy: Option<String>,
    /// Use no proxy, whatever the environment says.
    #[arg(long, global = true)]
    pub(crate) no_proxy: bool,
    /// Log what the client does to stderr (-v debug, -vv trace). Secrets and download URLs'
    /// queries are never logged.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// `--root-store`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RootStoreArg {
    /// Mozilla's roots (webpki-roots).
    Webpki,
    /// The operating system's store.
    Native,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Compute an NXCloud request signature; the tool to reach for when the server answers 1003.
    Sign(SignArgs),
    /// NXCloud WhatsApp media: get, delete, upload, download, send.
    #[command(subcommand)]
    Media(MediaCommand),
    /// WhatsApp Business On-Premises media (login, upload, get, delete, retry-download).
    Onprem(OnPremArgs),
    /// Webhook bodies: print the media references they hold.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Run the local sandbox (an emulator of NXCloud's and On-Premises' media APIs) until
    /// Ctrl-C or SIGTERM.
    Sandbox(SandboxArgs),
    /// Walk the whole media lifecycle against an in-process sandbox, showing each signed request.
    Demo,
}

/// `nxcloud sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The `bizType` header (2 is WhatsApp).
    #[arg(long, value_name = "N")]
    pub(crate) biz_type: u32,
    /// The `action` header, e.g. getMedia.
    #[arg(long, value_name = "A")]
    pub(crate) action: String,
    /// The `ts` header: milliseconds since the Unix epoch, exactly as sent.
    #[arg(long, value_name = "MS")]
    pub(crate) ts: u64,
    /// The JSON body exactly as sent (signed byte for byte).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["body_file", "multipart"])]
    pub(crate) body: Option<String>,
    /// Read the JSON body from a file (`-` for stdin); every byte is signed, a trailing newline
    /// included.
    #[arg(long, value_name = "FILE", conflicts_with = "multipart")]
    pub(crate) body_file: Option<PathBuf>,
    /// The request is multipart/form-data (uploadMedia): its body is not signed.
    #[arg(long)]
    pub(crate) multipart: bool,
    /// Also print each stage of the string to sign on stderr (the secret masked).
    #[arg(long)]
    pub(crate) explain: bool,
}

/// `nxcloud media ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum MediaCommand {
    /// getMedia: a media file's MIME type, name and pre-signed download URL (treat the URL as a
    /// secret until it expires).
    Get(MediaRef),
    /// deleteMedia: delete a media file from WhatsApp's storage.
    Delete(MediaRef),
    /// uploadMedia: upload a file and print its media id.
    Upload(UploadArgs),
    /// getMedia, then download the file to a path, checked (nothing is left at the path on
    /// failure).
    Download(DownloadArgs),
    /// mt: send a media message to a customer, by media id, by link, or by uploading a file
    /// first; prints the message id. A send is not retried once it may have reached NXCloud.
    Send(SendArgs),
    /// Fetch, verify and store every media of a file of inbound webhook bodies, into a
    /// directory or S3, resumably (see the README's "Archiving all media").
    Archive(crate::commands::archive::MediaArchiveArgs),
}

/// A media id on a merchant number.
#[derive(Debug, Args)]
pub(crate) struct MediaRef {
    /// The merchant's WhatsApp number: digits with the country code, no `+`.
    #[arg(long, value_name = "P")]
    pub(crate) phone: String,
    /// The media id.
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,
}

/// `nxcloud media upload`.
#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The merchant's WhatsApp number: digits with the country code, no `+`.
    #[arg(long, value_name = "P")]
    pub(crate) phone: String,
    /// The file to upload.
    pub(crate) file: PathBuf,
    /// The file's MIME type [default: guessed from the extension]. Either way it must be in
    /// WhatsApp's media table and agree with the file's leading bytes.
    #[arg(long = "type", value_name = "MIME")]
    pub(crate) mime: Option<String>,
}

/// A media message's kind (mt's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// JPEG or PNG; takes a caption.
    Image,
    /// MP4 or 3GP; takes a caption.
    Video,
    /// AAC, MP4, MPEG, AMR or OGG audio.
    Audio,
    /// Text, PDF or Office; takes a file name.
    Document,
    /// WebP.
    Sticker,
}

impl From<KindArg> for MediaKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Image => MediaKind::Image,
            KindArg::Video => MediaKind::Video,
            KindArg::Audio => MediaKind::Audio,
            KindArg::Document => MediaKind::Document,
            KindArg::Sticker => MediaKind::Sticker,
        }
    }
}

/// `nxcloud media send`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("media").required(true).args(["id", "link", "file"])))]
pub(crate) struct SendArgs {
    /// The merchant's WhatsApp number: digits with the country code, no `+`.
    #[arg(long, value_name = "P")]
    pub(crate) phone: String,
    /// The customer's WhatsApp number: digits with the country code, no `+`.
    #[arg(long, value_name = "TO")]
    pub(crate) to: String,
    /// Send this media id (from `media upload` or an inbound webhook).
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    /// Send the file at this http(s) URL (NXCloud fetches it).
    #[arg(long, value_name = "URL")]
    pub(crate) link: Option<String>,
    /// Upload this file first (its type checked as `media upload` does), then send it.
    pub(crate) file: Option<PathBuf>,
    /// The message kind [default: with --id the media's own (asked with getMedia), with --link
    /// the link's file extension, with FILE the file's type].
    #[arg(long = "type", value_name = "KIND")]
    pub(crate) kind: Option<KindArg>,
    /// With FILE: its MIME type [default: guessed from the extension].
    #[arg(long, value_name = "MIME")]
    pub(crate) mime: Option<String>,
    /// A caption (image and video only).
    #[arg(long, value_name = "TEXT")]
    pub(crate) caption: Option<String>,
    /// The file name the document is shown with (document only).
    #[arg(long, value_name = "NAME")]
    pub(crate) filename: Option<String>,
    /// The WhatsApp application's appkey.
    #[arg(long, env = ENV_APPKEY, value_name = "KEY")]
    pub(crate) appkey: Option<String>,
    /// Your own message id (`cus_message_id`, globally unique): the answer and status callbacks
    /// name the message by it. A send with one is retried no more than one without.
    #[arg(long, value_name = "ID")]
    pub(crate) message_id: Option<String>,
    /// A URL that receives this message's status callbacks first (`dr_webhook`).
    #[arg(long, value_name = "URL")]
    pub(crate) dr_webhook: Option<String>,
}

/// `nxcloud media download`.
#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// The merchant's WhatsApp number: digits with the country code, no `+`.
    #[arg(long, value_name = "P")]
    pub(crate) phone: String,
    /// The media id.
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,
    /// Where to store the file (replaced only once every check passed).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub(crate) output: PathBuf,
    /// The SHA-256 the file must have (64 hex characters, e.g. from the inbound webhook).
    #[arg(long, value_name = "HEX")]
    pub(crate) sha256: Option<Sha256Digest>,
}

/// `nxcloud onprem ...`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("password_source").args(["password", "password_file"])))]
pub(crate) struct OnPremArgs {
    /// The installation's base URL, e.g. `https://wa.example.internal:9090`.
    #[arg(long, env = ENV_ONPREM_URL, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// A bearer token from an earlier login (used when no user name and password are given;
    /// prefer --token-file or the environment variable).
    #[arg(long, env = ENV_ONPREM_TOKEN, hide_env_values = true, value_name = "T")]
    pub(crate) token: Option<String>,
    /// Read the token from this file (`-` for stdin): its one line, a trailing newline removed.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub(crate) token_file: Option<PathBuf>,
    /// Log in with this user name (with a password); takes precedence over a token.
    #[arg(
        long,
        env = ENV_ONPREM_USERNAME,
        value_name = "U",
        requires = "password_source"
    )]
    pub(crate) username: Option<String>,
    /// The user's password (prefer --password-file or the environment variable).
    #[arg(
        long,
        env = ENV_ONPREM_PASSWORD,
        hide_env_values = true,
        value_name = "P",
        requires = "username"
    )]
    pub(crate) password: Option<String>,
    /// Read the password from this file (`-` for stdin): its one line, a trailing newline
    /// removed.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "password",
        requires = "username"
    )]
    pub(crate) password_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: OnPremCommand,
}

/// `nxcloud onprem login | media ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum OnPremCommand {
    /// Log in with the user name and password and print the token.
    Login(OnPremLoginArgs),
    /// Media on the installation.
    #[command(subcommand)]
    Media(OnPremMediaCommand),
}

/// `nxcloud onprem login`.
#[derive(Debug, Args)]
pub(crate) struct OnPremLoginArgs {
    /// The first login of a fresh installation's admin: set this new password (Meta's API
    /// requires it then); later logins use it. Prefer --new-password-file or the environment
    /// variable.
    #[arg(long, env = ENV_ONPREM_NEW_PASSWORD, hide_env_values = true, value_name = "P")]
    pub(crate) new_password: Option<String>,
    /// Read the new password from this file (`-` for stdin): its one line, a trailing newline
    /// removed.
    #[arg(long, value_name = "PATH", conflicts_with = "new_password")]
    pub(crate) new_password_file: Option<PathBuf>,
}

/// `nxcloud onprem media ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum OnPremMediaCommand {
    /// Upload a file and print its media id.
    Upload(OnPremUploadArgs),
    /// Retrieve a media file to a path, checked (nothing is left at the path on failure).
    Get(OnPremGetArgs),
    /// Delete a media file.
    Delete(OnPremIdArgs),
    /// Ask the installation to download a customer's media again (the result arrives at the
    /// webhook as a notification: see `nxcloud webhook parse`).
    RetryDownload(OnPremIdArgs),
    /// Export every media of a list of ids (or notifications) into a directory or S3,
    /// verified and resumably (see the README's "Archiving all media").
    Export(crate::commands::archive::OnPremExportArgs),
}

/// `nxcloud onprem media upload`.
#[derive(Debug, Args)]
pub(crate) struct OnPremUploadArgs {
    /// The file to upload.
    pub(crate) file: PathBuf,
    /// The file's MIME type [default: guessed from the extension].
    #[arg(long = "type", value_name = "MIME")]
    pub(crate) mime: Option<String>,
}

/// `nxcloud onprem media get`.
#[derive(Debug, Args)]
pub(crate) struct OnPremGetArgs {
    /// The media id.
    pub(crate) id: String,
    /// Where to store the file.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub(crate) output: PathBuf,
    /// The SHA-256 the file must have (64 hex characters).
    #[arg(long, value_name = "HEX")]
    pub(crate) sha256: Option<Sha256Digest>,
}

/// A media id.
#[derive(Debug, Args)]
pub(crate) struct OnPremIdArgs {
    /// The media id.
    pub(crate) id: String,
}

/// `nxcloud webhook ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Print the media references in an NXCloud inbound webhook body or an On-Premises media
    /// notification (told apart by their shape).
    Parse(WebhookParseArgs),
}

/// `nxcloud webhook parse`.
#[derive(Debug, Args)]
pub(crate) struct WebhookParseArgs {
    /// The body's file, or `-` for stdin.
    #[arg(default_value = "-", value_name = "FILE|-")]
    pub(crate) file: PathBuf,
}

/// `nxcloud sandbox`.
#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// The address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub(crate) addr: SocketAddr,
    /// Bind this business phone to the accounts (repeatable) [default: 8613800138000].
    #[arg(long = "phone", value_name = "P")]
    pub(crate) phones: Vec<String>,
    /// POST NXCloud's inbound-message webhook here (a loopback http:// URL).
    #[arg(long, value_name = "URL")]
    pub(crate) webhook: Option<String>,
    /// POST On-Premises media notifications here (a loopback http:// URL).
    #[arg(long, value_name = "URL")]
    pub(crate) onprem_callback: Option<String>,
    /// Serve HTTPS with a throwaway CA made at start; its certificate is written to a file
    /// named on stdout, for --ca-bundle.
    #[arg(long)]
    pub(crate) tls: bool,
}

/// The options a value may come from the environment for, as clap's usage line shows them.
const FROM_ENVIRONMENT: &[&str] = &[
    " --base-url <URL>",
    " --access-key <KEY>",
    " --access-secret <SECRET>",
    " --url <URL>",
    " --token <T>",
    " --username <U>",
    " --password <P>",
    " --new-password <P>",
];

/// A clap usage error as printed, its `Usage:` line without the options clap adds because their
/// value came from the environment (it lists every option that has a value): a usage line
/// showing `--access-secret <SECRET>` reads as if the secret must be typed on the command line.
pub(crate) fn usage_without_environment(rendered: &str) -> String {
    rendered
        .split_inclusive('\n')
        .map(|line| {
            if !line.trim_start().starts_with("Usage: ") {
                return line.to_owned();
            }
            let mut line = line.to_owned();
            for option in FROM_ENVIRONMENT {
                let given = std::env::args().any(|a| {
                    let name = option.trim_start().split(' ').next().unwrap_or_default();
                    a == name || a.starts_with(&format!("{name}="))
                });
                if !given {
                    line = line.replace(option, "");
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn usage_lines_leave_out_what_the_environment_gave() {
        let rendered = "error: missing --id\n\nUsage: nxcloud media get --phone <P> --id <ID> --access-key <KEY> --access-secret <SECRET>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_without_environment(rendered),
            "error: missing --id\n\nUsage: nxcloud media get --phone <P> --id <ID>\n\nFor more information, try '--help'.\n"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
