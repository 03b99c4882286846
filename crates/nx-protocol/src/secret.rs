//! Credentials, with a secret that never shows itself.

use std::fmt;

use zeroize::Zeroizing;

/// What every redacted value prints instead of itself.
pub const REDACTED: &str = "<redacted>";

/// An NXCloud `accessSecret`.
///
/// It never travels on the wire (it only feeds the MD5 signature), and it never shows itself:
/// `Debug` and `Display` print [`REDACTED`]. The bytes are zeroed when the value is dropped.
///
/// ```
/// use nx_protocol::AccessSecret;
/// let secret = AccessSecret::new("abciiiko2k3");
/// assert_eq!(format!("{secret:?}"), "AccessSecret(<redacted>)");
/// assert_eq!(secret.expose(), "abciiiko2k3");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AccessSecret(Zeroizing<String>);

impl AccessSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Only the signer and code that must hand it on should call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessSecret({REDACTED})")
    }
}

impl fmt::Display for AccessSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// An NXCloud account's key pair: the public `accessKey` and the [`AccessSecret`].
///
/// ```
/// use nx_protocol::Credentials;
/// let creds = Credentials::new("fme2na3kdi3ki", "abciiiko2k3");
/// assert_eq!(
///     format!("{creds:?}"),
///     r#"Credentials { access_key: "fme2na3kdi3ki", access_secret: AccessSecret(<redacted>) }"#
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    access_secret: AccessSecret,
}

impl Credentials {
    /// Builds credentials from an access key and its secret.
    pub fn new(access_key: impl Into<String>, access_secret: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            access_secret: AccessSecret::new(access_secret),
        }
    }

    /// The public access key id (sent as the `accessKey` header).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret (never sent).
    pub fn access_secret(&self) -> &AccessSecret {
        &self.access_secret
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("access_secret", &self.access_secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let creds = Credentials::new("key", "s3cr3t-value");
        let shown = format!(
            "{creds:?} {creds:#?} {} {:?}",
            creds.access_secret(),
            creds.access_secret()
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(format!("{}", creds.access_secret()), "<redacted>");
        assert_eq!(
            format!("{:?}", creds.access_secret()),
            "AccessSecret(<redacted>)"
        );
    }
}
