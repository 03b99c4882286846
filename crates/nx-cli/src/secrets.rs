//! Secrets from a file or stdin: `--access-secret-file`, `--password-file`,
//! `--new-password-file`, `--token-file` (`-` for stdin), the third way beside a flag (which
//! every user of the machine sees in `ps`) and an environment variable.
//!
//! They are read once, after parsing and before any command runs, into the option they stand
//! for, so every command sees one value whichever way it came. The file's content is the secret
//! with exactly one trailing `\n` or `\r\n` removed (what `echo` and editors add) and nothing
//! else trimmed: a secret that ends in spaces keeps them. An empty value, text that is not
//! UTF-8 or that holds any other control character (a second line, a tab, a NUL) is refused as
//! a usage error; no message ever quotes the content.

use std::path::Path;

use nx_protocol::config::{ENV_ACCESS_SECRET, ENV_ONPREM_TOKEN};

use crate::args::{
    Cli, Command, ENV_ONPREM_NEW_PASSWORD, ENV_ONPREM_PASSWORD, MediaCommand, OnPremCommand,
    OnPremMediaCommand, WebhookCommand,
};
use crate::exit::CliError;
use crate::input;

/// The most a secret file may hold: far above any real secret, token or password.
const MAX_SECRET: u64 = 64 * 1024;

/// One secret to read: its file option, the variable of its flag form, the file, and the
/// option its value goes into.
struct Wanted<'a> {
    option: &'static str,
    env: &'static str,
    path: &'a Path,
    value: &'a mut Option<String>,
}

/// Reads every `--*-file` option `cli` holds into the option it stands for. At most one
/// input may be stdin (`-`): two secrets, or a secret and the command's own input (`sign
/// --body-file -`, `webhook parse`, `--from -`, `--ids -`), are refused before anything is
/// read.
pub(crate) fn resolve(cli: &mut Cli) -> Result<(), CliError> {
    let stdin_input = command_stdin(&cli.command);
    let mut wanted = Vec::new();
    if let Some(path) = &cli.global.access_secret_file {
        wanted.push(Wanted {
            option: "--access-secret-file",
            env: ENV_ACCESS_SECRET,
            path,
            value: &mut cli.global.access_secret,
        });
    }
    if let Command::Onprem(onprem) = &mut cli.command {
        if let Some(path) = &onprem.token_file {
            wanted.push(Wanted {
                option: "--token-file",
                env: ENV_ONPREM_TOKEN,
                path,
                value: &mut onprem.token,
            });
        }
        if let Some(path) = &onprem.password_file {
            wanted.push(Wanted {
                option: "--password-file",
                env: ENV_ONPREM_PASSWORD,
                path,
                value: &mut onprem.password,
            });
        }
        if let OnPremCommand::Login(login) = &mut onprem.command
            && let Some(path) = &login.new_password_file
        {
            wanted.push(Wanted {
                option: "--new-password-file",
                env: ENV_ONPREM_NEW_PASSWORD,
                path,
                value: &mut login.new_password,
            });
        }
    }
    let readers: Vec<&str> = wanted
        .iter()
        .filter(|w| is_stdin(w.path))
        .map(|w| w.option)
        .chain(stdin_input)
        .collect();
    if let [first, second, ..] = readers[..] {
        return Err(CliError::usage(format!(
            "{first} and {second} both read stdin (`-`); at most one input may"
        ))
        .with_hint("give the secret in a file (a pipe such as <(...) works too) or the environment variable"));
    }
    for Wanted {
        option,
        env,
        path,
        value,
    } in wanted
    {
        // clap refuses the flag with the file, and the variable with the file for the options
        // that are not global; the variable of a global option it does not see (clap 4 checks
        // conflicts of a global option's environment value only where it is defined).
        if value.is_some() {
            return Err(CliError::usage(format!(
                "the argument '{option}' cannot be used with {env} (set in the environment)"
            ))
            .with_hint(format!("unset {env}, or leave out {option}")));
        }
        *value = Some(read(option, path)?);
    }
    Ok(())
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The option through which the command itself reads stdin, if it does.
fn command_stdin(command: &Command) -> Option<&'static str> {
    let (option, path) = match command {
        Command::Sign(args) => ("--body-file", args.body_file.as_deref()?),
        Command::Webhook(WebhookCommand::Parse(args)) => ("webhook parse's FILE", &*args.file),
        Command::Media(MediaCommand::Archive(args)) => ("--from", &*args.from),
        Command::Onprem(args) => match &args.command {
            OnPremCommand::Media(OnPremMediaCommand::Export(export)) => ("--ids", &*export.ids),
            _ => return None,
        },
        _ => return None,
    };
    is_stdin(path).then_some(option)
}

/// The secret in `path` (`-`: stdin), for `option`'s messages.
fn read(option: &str, path: &Path) -> Result<String, CliError> {
    // The messages name the file and the failure (`opening F: No such file or directory`),
    // never what was read.
    let bytes = input::read_capped(path, MAX_SECRET, "a secret file holds one short line")
        .map_err(|e| CliError::usage(format!("{option}: {}", e.message)))?;
    let name = input::name_of(path);
    let refused = |why: &str| CliError::usage(format!("{option}: {name} {why}"));
    let mut text = String::from_utf8(bytes).map_err(|_| refused("is not UTF-8 text"))?;
    let ending = if text.ends_with("\r\n") {
        2
    } else {
        usize::from(text.ends_with('\n'))
    };
    text.truncate(text.len() - ending);
    if text.is_empty() {
        return Err(refused("is empty"));
    }
    if let Some(at) = text.chars().position(char::is_control) {
        return Err(refused(&format!(
            "holds a control character (character {}): it must be the secret alone on one line",
            at + 1
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(bytes: &[u8]) -> Result<String, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, bytes).unwrap();
        // The path (random) as `PATH`, so that a check on the message cannot match it.
        read("--token-file", &path).map_err(|mut e| {
            e.message = e.message.replace(&path.display().to_string(), "PATH");
            e
        })
    }

    #[test]
    fn one_trailing_newline_is_removed_and_nothing_else() {
        assert_eq!(from(b"s3cret\n").unwrap(), "s3cret");
        assert_eq!(from(b"s3cret\r\n").unwrap(), "s3cret");
        assert_eq!(from(b"s3cret").unwrap(), "s3cret");
        assert_eq!(from(b" s3 cret  \n").unwrap(), " s3 cret  ");
        for bad in [
            &b"s3cret\n\n"[..],
            b"s3cret\r",
            b"s3\tcret",
            b"s3\0cret",
            b"line1\nline2\n",
            b"\n",
            b"\r\n",
            b"",
            b"\xff\xfe",
        ] {
            let e = from(bad).unwrap_err();
            assert_eq!(e.exit.code(), 2, "{bad:?}");
            assert!(
                e.message.starts_with("--token-file: PATH "),
                "{}",
                e.message
            );
            assert!(
                !e.message.contains("s3") && !e.message.contains("line1"),
                "{}",
                e.message
            );
        }
        assert!(from(b"").unwrap_err().message.ends_with(" is empty"));
        assert!(
            from(b"ab\x07")
                .unwrap_err()
                .message
                .contains("(character 3)")
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("pw");
        let e = read("--password-file", &missing).unwrap_err();
        assert_eq!(e.exit.code(), 2);
        let named = format!("--password-file: opening {}: ", missing.display());
        assert!(e.message.starts_with(&named), "{}", e.message);
        let e = read("--password-file", dir.path()).unwrap_err();
        assert_eq!(e.exit.code(), 2, "{}", e.message);
    }
}
