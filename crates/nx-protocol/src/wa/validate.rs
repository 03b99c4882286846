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
    let len = phone.chars().count();
    let reason = if phone.is_empty() {
        "it is empty"
    } else if phone.starts_with('+') {
        "it starts with `+`"
    } else if !phone.bytes().all(|b| b.is_ascii_digit()) {
        "it holds characters other than digits"
    } else if !(6..=20).contains(&len) {
        "it does not have 6 to 20 digits"
    } else {
        return Ok(());
    };
    Err(InvalidInput::Phone { reason, len })
}

/// A media id: non-empty, at most [`MAX_MEDIA_ID_LEN`] bytes, no control characters. Anything
/// else (including `/`, `?`, `%`) is kept as it is and encoded by whoever puts it on the wire.
pub fn validate_media_id(id: &str) -> Result<(), InvalidInput> {
    let reason = if id.is_empty() {
        "is empty"
    } else if id.len() > MAX_MEDIA_ID_LEN {
        "is longer than 512 bytes"
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
    }
}
