//! The bearer token a login answers, and the rules for when to log in ([`TokenSlot`]).

use std::fmt;

use zeroize::Zeroizing;

use crate::secret::{AccessSecret, REDACTED};
use crate::time::Timestamp;

/// A bearer token of the On-Premises API and when it stops being accepted.
///
/// The token grants access to the API, so it never shows itself: `Debug` prints [`REDACTED`]
/// in its place, and its bytes are zeroed when the value is dropped.
///
/// ```
/// use nx_protocol::onprem::Token;
/// use nx_protocol::Timestamp;
/// let token = Token::from_parts("eyJhbGciOi", Some(Timestamp::from_millis(1_519_918_166_000)));
/// assert_eq!(
///     format!("{token:?}"),
///     "Token { token: <redacted>, expires_after: Some(Timestamp(1519918166000)) }"
/// );
/// // Log in again five minutes before it expires.
/// assert!(!token.needs_refresh(Timestamp::from_millis(1_519_917_000_000), 300_000));
/// assert!(token.needs_refresh(Timestamp::from_millis(1_519_918_000_000), 300_000));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    token: Zeroizing<String>,
    expires_after: Option<Timestamp>,
}

impl Token {
    /// A token the caller already has, with its expiry if known.
    pub fn from_parts(token: impl Into<String>, expires_after: Option<Timestamp>) -> Self {
        Self {
            token: Zeroizing::new(token.into()),
            expires_after,
        }
    }

    /// The token itself. Only code that puts it in an `Authorization` header should call this.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// When the token stops being accepted, if known.
    pub fn expires_after(&self) -> Option<Timestamp> {
        self.expires_after
    }

    /// Whether to log in again before the next call: the token expires within `margin_ms` of
    /// `now` (or already has). A token whose expiry is unknown never needs a refresh by this
    /// rule; the server's 401 says when it does.
    pub fn needs_refresh(&self, now: Timestamp, margin_ms: u64) -> bool {
        self.expires_after
            .is_some_and(|at| now.as_millis().saturating_add(margin_ms) >= at.as_millis())
    }
}

/// The token a client holds, and the rules for when to log in: before the first call, shortly
/// before expiry, and once after a 401 unless another call already replaced the token. A token
/// the caller gave cannot be renewed. Transports keep one behind a lock.
#[derive(Clone, Debug)]
pub struct TokenSlot {
    token: Option<Token>,
    given: bool,
    /// The password a first login set ([`Login::with_new_password`]): later logins use it
    /// instead of the configured one, which no longer works.
    password: Option<AccessSecret>,
}

/// Which token a call sends next ([`TokenSlot::next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextToken {
    /// Send this one.
    Use(Token),
    /// Log in first (none yet, it is about to expire, or the server rejected it), then store
    /// the new one.
    LogIn,
    /// The server rejected a token the caller gave: there is nothing to log in with.
    Refused,
}

/// What to do after the server rejected a token with 401.
///
/// Exhaustive on purpose: a transport acts on every outcome, so a new one must fail to compile rather than fall into a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRejection {
    /// Another call already logged in: use this token.
    Replaced(Token),
    /// Log in again.
    LogIn,
    /// The token was given by the caller; there is nothing to log in with.
    Final,
}

impl TokenSlot {
    /// A slot for a client that logs in (`None`) or uses a token the caller gave.
    pub fn new(given: Option<Token>) -> Self {
        Self {
            given: given.is_some(),
            token: given,
            password: None,
        }
    }

    /// The password to log in with: the one a first login set, else `configured`.
    pub fn login_password<'a>(&'a self, configured: &'a AccessSecret) -> &'a AccessSecret {
        self.password.as_ref().unwrap_or(configured)
    }

    /// Records that a first login replaced the password with `new_password`.
    pub fn password_changed(&mut self, new_password: AccessSecret) {
        self.password = Some(new_password);
    }

    /// The token to use at `now`, if it is good for more than `margin_ms`; `None` means log in
    /// first. A given token is always used.
    pub fn usable(&self, now: crate::Timestamp, margin_ms: u64) -> Option<Token> {
        self.token
            .clone()
            .filter(|t| self.given || !t.needs_refresh(now, margin_ms))
    }

    /// Keeps a token a login answered.
    pub fn store(&mut self, token: Token) {
        self.token = Some(token);
    }

    /// Whether this client can log in (it was not given a token).
    pub fn can_log_in(&self) -> bool {
        !self.given
    }

    /// What to do after `rejected` was answered 401.
    pub fn after_rejection(&self, rejected: &Token) -> AfterRejection {
        match &self.token {
            _ if self.given => AfterRejection::Final,
            Some(current) if current != rejected => AfterRejection::Replaced(current.clone()),
            _ => AfterRejection::LogIn,
        }
    }

    /// The token a call sends next, at `now`: the current one if it is usable (not within
    /// `margin_ms` of expiry), else a login; after a 401 refused `rejected`, as
    /// [`TokenSlot::after_rejection`] says.
    pub fn next(&self, rejected: Option<&Token>, now: Timestamp, margin_ms: u64) -> NextToken {
        match rejected.map(|token| self.after_rejection(token)) {
            None => self
                .usable(now, margin_ms)
                .map_or(NextToken::LogIn, NextToken::Use),
            Some(AfterRejection::Final) => NextToken::Refused,
            Some(AfterRejection::Replaced(token)) => NextToken::Use(token),
            Some(AfterRejection::LogIn) => NextToken::LogIn,
        }
    }
}

/// Shows [`REDACTED`] in `Debug` output in place of a secret.
pub(super) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &Redacted)
            .field("expires_after", &self.expires_after)
            .finish()
    }
}
