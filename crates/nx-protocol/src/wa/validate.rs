//! Checks on the fields every media call carries, made before anything is sent.

use crate::error::InvalidInput;

/// The longest media id accepted. Ids are UUIDs or digit strings well below this; a longer one
/// is a caller bug, not an id.
pub const MAX_MEDIA_ID_LEN: usize = 512;

/// `business_phone`: the merchant's number with country code, 6 to 20 ASCII digits, nothing else.
///
/// ```
/// use nx_protocol::wa::validate_phone;
/// assert!(validate_phone("8615800001795").is_ok());
/// assert!(validate_phone("+86 158 0000 1795").is_err());
/// ```
pub fn validate_phone(phone: &str) -> Result<(), InvalidInput> {
    match phone_problem(phone) {
        None => Ok(()),
        Some(reason) => Err(InvalidInput::Phone {
            reason,
            len: phone.chars().count(),
        }),
    }
}

/// What is wrong with a merchant's WhatsApp number (6 to 20 ASCII digits with the country
/// code), if anything.
pub(crate) fn phone_problem(phone: &str) -> Option<&'static str> {
    Some(if phone.is_empty() {
        "it is empty"
    } else if phone.starts_with('+') {
        "it starts with `+`"
    } else if !phone.bytes().all(|b| b.is_ascii_digit()) {
        "it holds characters other than digits"
    } else if !(6..=20).contains(&phone.len()) {
        "it does not have 6 to 20 digits"
    } else {
        return None;
    })
}

/// What is wrong with a message's recipient (`to`), if anything: ASCII digits with the
/// country code, as `business_phone`, and an E.164 number, so at most 15 digits and at least 7 (the
/// shortest in use: a 3-digit country code and a 4-digit number). The spec says only "digits
/// with country code"; this reading refuses before sending what WhatsApp cannot deliver, and
/// is the sandbox's.
/// The reasons complete "message field `to` ...".
pub(crate) fn recipient_problem(to: &str) -> Option<&'static str> {
    Some(if to.is_empty() {
        "is empty"
    } else if to.starts_with('+') {
        "starts with `+`: give the digits only"
    } else if !to.bytes().all(|b| b.is_ascii_digit()) {
        "holds characters other than digits"
    } else if !(7..=15).contains(&to.len()) {
        "is not an E.164 number: it must have 7 to 15 digits"
    } else {
        return None;
    })
}

/// What is wrong with a URL the platform is to fetch or call (a media `link`, a `dr_webhook`),
/// if anything: it must be an absolute `http` or `https` URL with a host, and nothing HTTP
/// cannot carry (white space, control characters).
pub(crate) fn http_url_problem(url: &str) -> Option<&'static str> {
    if url.is_empty() {
        return Some("is empty");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("holds white space or control characters");
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Some("is not a valid absolute URL");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Some("must be an http or https URL");
    }
    match uri.authority() {
        Some(a) if a.as_str().contains('@') => Some("must not carry credentials"),
        Some(a) if a.host().is_empty() => Some("has no host"),
        Some(_) if !port_is_valid(&uri) => Some("has a port that is not a number from 0 to 65535"),
        Some(_) => None,
        None => Some("has no host"),
    }
}

/// Whether what follows the host in `uri`'s authority is nothing, or `:` and a `u16`:
/// `http::Uri` takes any text after the host's `:` as the port (`:abc`, `:99999`, `:`).
pub(crate) fn port_is_valid(uri: &http::Uri) -> bool {
    let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
        return true;
    };
    let after_host = authority.as_str().get(host.len()..).unwrap_or("");
    after_host.is_empty()
        || after_host
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok())
}

/// A media id: non-empty, at most [`MAX_MEDIA_ID_LEN`] bytes, no control characters. Anything
/// else (including `/`, `?`, `%`) is kept as it is and encoded by whoever puts it on the wire.
pub fn validate_media_id(id: &str) -> Result<(), InvalidInput> {
    let reason = if id.is_empty() {
        "is empty"
    } else if id.len() > MAX_MEDIA_ID_LEN {
        "is longer than 512 bytes"
    } else if id.is_ascii() {
        // The same rules on bytes: the ASCII controls are below 0x20 and 0x7f, and once they
        // are refused, the space is the only ASCII white space left.
        // No early exit, so that the loop vectorizes.
        let mut control = false;
        for &b in id.as_bytes() {
            control |= (b < 0x20) | (b == 0x7f);
        }
        if control {
            "holds control characters"
        } else if id.starts_with(' ') || id.ends_with(' ') {
            "has leading or trailing white space"
        } else {
            return Ok(());
        }
    } else if id.chars().any(char::is_control) {
        "holds control characters"
    } else if id.trim() != id {
        "has leading or trailing white space"
    } else {
        return Ok(());
    };
    Err(InvalidInput::MediaId { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in ["123456", "86158000017951234567", "8615800001795"] {
            assert!(validate_phone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "12345",
            "861580000179512345678",
            "+8615800001795",
            "86 158",
            "86158x",
            "８６１５８０",
        ] {
            assert!(validate_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recipients() {
        for ok in ["6831234", "8613600009759", "123456789012345"] {
            assert_eq!(recipient_problem(ok), None, "{ok}");
        }
        for bad in ["683123", "1234567890123456", "+8613600009759", "86 136", ""] {
            assert!(recipient_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn http_urls() {
        for ok in [
            "https://cdn.example/a.png",
            "http://127.0.0.1:8080/x?sig=1#f",
            "https://[::1]/a",
        ] {
            assert_eq!(http_url_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "ftp://cdn.example/a.png",
            "cdn.example/a.png",
            "/a.png",
            "https://",
            "https://a b/c",
            "https://a/b\nc",
            "https://user:pw@cdn.example/a",
            "javascript:alert(1)",
        ] {
            assert!(http_url_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn media_ids() {
        for ok in [
            "fd81acff-eea8-4d9d-acc9-6c62904d6615",
            "../users",
            "a/b?c#d%2F",
        ] {
            assert!(validate_media_id(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(4096);
        for bad in ["", "a\nb", "a\0", " a", long.as_str()] {
            assert!(validate_media_id(bad).is_err(), "{bad:?}");
        }
        // The ASCII shortcut gives what the rules on `char`s give, for every ASCII byte at
        // either end and inside.
        let by_chars = |id: &str| {
            if id.chars().any(char::is_control) {
                Err("control")
            } else if id.trim() != id {
                Err("white space")
            } else {
                Ok(())
            }
        };
        let reason = |id: &str| match validate_media_id(id) {
            Ok(()) => Ok(()),
            Err(InvalidInput::MediaId { reason }) if reason.contains("control") => Err("control"),
            Err(InvalidInput::MediaId { reason }) if reason.contains("white space") => {
                Err("white space")
            }
            Err(other) => panic!("{id:?}: {other:?}"),
        };
        for b in 0u8..0x80 {
            let c = char::from(b);
            for id in [
                format!("{c}"),
                format!("{c}a"),
                format!("a{c}"),
                format!("a{c}b"),
            ] {
                assert_eq!(reason(&id), by_chars(&id), "{id:?}");
            }
        }
    }
}
