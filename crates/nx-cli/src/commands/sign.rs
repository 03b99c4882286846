//! `nxcloud sign`: the signature alone on stdout; with `--explain`, the stages on stderr.

use crate::args::{GlobalArgs, SignArgs};
use crate::clients;
use crate::exit::CliError;
use crate::explain;
use crate::input;
use crate::output::{self, Output};
use crate::terminal::shown;
use nx_protocol::operation::headers;
use nx_protocol::sign::SignableBody;

/// Below this a `ts` is more likely seconds than milliseconds (it would be before 1973).
const LIKELY_SECONDS: u64 = 100_000_000_000;

/// Runs `nxcloud sign`.
pub(crate) fn run(global: &GlobalArgs, args: &SignArgs, out: Output) -> Result<(), CliError> {
    let (key, secret) = clients::credentials(global)?;
    let body = match (&args.body, &args.body_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => input::read_capped(
            path,
            input::MAX_JSON,
            "an NXCloud request body is a small JSON document",
        )?,
        (None, None) => Vec::new(),
    };
    let signable = if args.multipart {
        SignableBody::Multipart
    } else if body.is_empty() {
        SignableBody::Empty
    } else {
        SignableBody::Json(&body)
    };
    let ts = args.ts.to_string();
    let biz_type = args.biz_type.to_string();
    let params = [
        (headers::ACCESS_KEY, key.as_str()),
        (headers::ACTION, args.action.as_str()),
        (headers::BIZ_TYPE, biz_type.as_str()),
        (headers::TS, ts.as_str()),
    ];
    let stages =
        explain::stages(&params, signable, &secret).map_err(|e| CliError::usage(e.to_string()))?;

    if args.ts < LIKELY_SECONDS {
        output::note(&format!(
            "warning: --ts {} looks like seconds; NXCloud wants milliseconds (the server answers 1004 otherwise)",
            args.ts
        ));
    }
    // Said with or without --explain: an editor's final newline is the usual cause of a 1003.
    if body.last().is_some_and(|b| b.is_ascii_whitespace()) && !args.multipart {
        output::note(
            "note: the body ends with whitespace (e.g. a newline); it is signed too and must be sent exactly so",
        );
    }
    if args.explain {
        // The body came from a file or the command line: control characters shown escaped.
        output::note(&format!(
            "1. headers, sorted:  {}",
            shown(&stages.header_string)
        ));
        let body_note = match signable {
            SignableBody::Multipart => "(none: a multipart body is not signed)",
            SignableBody::Empty => "(none: the body is empty)",
            SignableBody::Json(_) => "",
        };
        output::note(&format!(
            "2. body part:        {}{body_note}",
            shown(&stages.body_segment)
        ));
        output::note(&format!(
            "3. string to sign:   {}",
            shown(&stages.canonical_string)
        ));
        output::note(&format!("4. sign = md5(3):    {}", stages.signature));
    }
    if out.is_json() {
        out.json(&stages)
    } else {
        output::stdout_line(&stages.signature)
    }
}
