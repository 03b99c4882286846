//! Logging in: `POST /v1/users/login`, and the `expires_after` format of its answer.

use std::fmt;

use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};
use crate::error::{DataError, InvalidInput};
use crate::onprem::operation::{AuthKind, OnPremBody, OnPremOperation};
use crate::onprem::token::{Redacted, Token};
use crate::time::Timestamp;

/// `POST /v1/users/login` with Basic auth: a bearer [`Token`].
///
/// The body is `{}`, or `{"new_password":"..."}` for the first login of the admin user, which
/// must set a new password. `Debug` never shows the new password.
///
/// ```
/// use nx_protocol::onprem::{build_request, parse_response, Auth, Login};
/// use nx_protocol::operation::BaseUrl;
/// use nx_protocol::OutgoingBody;
/// let base = BaseUrl::parse("https://wa.example.internal:9090").unwrap();
/// let auth = Auth::Basic { username: "admin", password: "secret" };
/// let request = build_request(&Login::new(), &base, auth).unwrap();
/// assert_eq!(request.uri(), "https://wa.example.internal:9090/v1/users/login");
/// assert_eq!(request.headers()["authorization"], "Basic YWRtaW46c2VjcmV0");
/// assert_eq!(request.body(), &OutgoingBody::Bytes("{}".into()));
///
/// let answer = br#"{"users":[{"token":"eyJhbGciOi","expires_after":"2018-03-01 15:29:26+00:00"}]}"#;
/// let token = parse_response(&Login::new(), http::StatusCode::OK, &http::HeaderMap::new(), answer)
///     .unwrap();
/// assert_eq!(token.expose(), "eyJhbGciOi");
/// assert_eq!(token.expires_after().unwrap().as_secs(), 1_519_918_166);
/// ```
#[derive(Clone, Default)]
pub struct Login {
    new_password: Option<Zeroizing<String>>,
}

impl Login {
    /// A login with the current password.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first login of the admin user, which sets `new_password`.
    pub fn with_new_password(new_password: impl Into<String>) -> Self {
        Self {
            new_password: Some(Zeroizing::new(new_password.into())),
        }
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field(
                "new_password",
                &self.new_password.as_ref().map(|_| Redacted),
            )
            .finish()
    }
}

#[derive(Deserialize)]
struct LoginAnswer {
    users: Vec<LoginUser>,
}

#[derive(Deserialize)]
struct LoginUser {
    token: String,
    #[serde(default)]
    expires_after: Option<serde_json::Value>,
}

impl OnPremOperation for Login {
    type Output = Token;

    fn method(&self) -> Method {
        Method::POST
    }
    fn path(&self) -> Result<String, InvalidInput> {
        Ok("/v1/users/login".to_owned())
    }
    fn auth_kind(&self) -> AuthKind {
        AuthKind::Basic
    }
    fn body(&self) -> Result<OnPremBody, InvalidInput> {
        if self.new_password.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(InvalidInput::NewPassword { reason: "is empty" });
        }
        // Reading of the spec's "an empty JSON body": the empty JSON object, `{}` (2 bytes, with
        // `Content-Type: application/json`), not a body of no bytes, which is no JSON at all.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            new_password: Option<&'a str>,
        }
        OnPremBody::json(&Body {
            new_password: self.new_password.as_deref().map(String::as_str),
        })
    }
    fn parse_output(
        &self,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Token, DataError> {
        let answer: LoginAnswer =
            serde_json::from_slice(body).map_err(|e| DataError::json("the login answer", &e))?;
        let user = answer
            .users
            .into_iter()
            .next()
            .ok_or(DataError::invalid("the login answer's `users` is empty"))?;
        if user.token.is_empty() {
            return Err(DataError::invalid("the login answer's token is empty"));
        }
        // Reading: an `expires_after` that is absent or cannot be read (not a string, not the
        // documented format) leaves the expiry unknown rather than throwing away a token the
        // server just issued; the client then uses it until a 401, and logs in again.
        let expires_after = user
            .expires_after
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(parse_expires_after);
        Ok(Token::from_parts(user.token, expires_after))
    }
    /// Logging in twice only makes a second token. Setting a new password is not repeatable:
    /// after it succeeded, the old password no longer logs in.
    fn is_idempotent(&self) -> bool {
        self.new_password.is_none()
    }
}

/// Reads `n` ASCII digits at `at`.
fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let field = s.get(at..at + n)?;
    field.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Parses an `expires_after` value, `YYYY-MM-DD HH:MM:SS+HH:MM`, into a [`Timestamp`].
///
/// Also accepted: a `-HH:MM` offset, `Z` for UTC, `T` instead of the space, and a fraction of a
/// second (`.123`, kept to the millisecond). `None` for anything else, for impossible dates, and
/// for instants before 1970 (which a [`Timestamp`] cannot hold). Never panics.
///
/// ```
/// use nx_protocol::onprem::parse_expires_after;
/// let t = parse_expires_after("2018-03-01 15:29:26+00:00").unwrap();
/// assert_eq!(t.as_secs(), 1_519_918_166);
/// // 15:29:26 at UTC-05:30 is 20:59:26 UTC.
/// assert_eq!(parse_expires_after("2018-03-01 15:29:26-05:30").unwrap().as_secs(), 1_519_937_966);
/// assert_eq!(parse_expires_after("2018-03-01T15:29:26Z"), Some(t));
/// assert_eq!(parse_expires_after("2018-02-30 00:00:00+00:00"), None);
/// ```
pub fn parse_expires_after(text: &str) -> Option<Timestamp> {
    let s = text.trim().as_bytes();
    let sep = |at: usize, allowed: &[u8]| s.get(at).is_some_and(|b| allowed.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b" Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (hour, minute, second) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut at = 19;
    let mut millis = 0;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                millis = millis * 10 + i64::from(s[at] - b'0');
            }
            at += 1;
        }
        match at - start {
            0 => return None,
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }

    let offset_secs = match s.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let field = [*h1, *h2, *m1, *m2];
            let (oh, om) = (digits(&field, 0, 2)?, digits(&field, 2, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };

    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc_millis = (local - offset_secs) * 1000 + millis;
    u64::try_from(utc_millis).ok().map(Timestamp::from_millis)
}

/// Formats a [`Timestamp`] the way the login answer writes `expires_after`, in UTC
/// (`YYYY-MM-DD HH:MM:SS+00:00`, milliseconds dropped). For servers and tests.
///
/// ```
/// use nx_protocol::onprem::format_expires_after;
/// use nx_protocol::Timestamp;
/// assert_eq!(
///     format_expires_after(Timestamp::from_millis(1_519_918_166_000)),
///     "2018-03-01 15:29:26+00:00"
/// );
/// ```
pub fn format_expires_after(at: Timestamp) -> String {
    // u64 seconds fit i64 with room to spare (u64::MAX / 1000 < i64::MAX).
    let secs = i64::try_from(at.as_secs()).unwrap_or(i64::MAX);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+00:00",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ResponseError;
    use crate::onprem::operation::{Auth, build_request, parse_response};
    use crate::operation::BaseUrl;
    use crate::{OutgoingBody, Timestamp};

    fn login(body: &[u8]) -> Result<Token, ResponseError> {
        parse_response(&Login::new(), StatusCode::OK, &HeaderMap::new(), body)
    }

    #[test]
    fn expiry_formats() {
        let cases = [
            ("2018-03-01 15:29:26+00:00", Some(1_519_918_166_000)),
            ("2018-03-01 15:29:26-05:30", Some(1_519_937_966_000)),
            ("2018-03-01 15:29:26+01:00", Some(1_519_914_566_000)),
            // India and Brazil: 15:29:26 at UTC+05:30 is 09:59:26 UTC, at UTC-03:00 18:29:26.
            ("2018-03-01 15:29:26+05:30", Some(1_519_898_366_000)),
            ("2018-03-01 15:29:26-03:00", Some(1_519_928_966_000)),
            ("2018-03-01 15:29:26.999-03:00", Some(1_519_928_966_999)),
            ("2018-03-01 15:29:26+05:3", None),
            ("2018-03-01 15:29:26+5:30", None),
            ("2018-03-01 15:29:26 +00:00", None),
            ("2018-03-01 15:29:26+00:60", None),
            ("garbage", None),
            ("2018-03-01 15:29:26Z", Some(1_519_918_166_000)),
            ("2018-03-01T15:29:26.5Z", Some(1_519_918_166_500)),
            ("2018-03-01 15:29:26.123456+00:00", Some(1_519_918_166_123)),
            ("  2018-03-01 15:29:26+00:00 ", Some(1_519_918_166_000)),
            ("1970-01-01 00:00:00+00:00", Some(0)),
            ("2000-02-29 00:00:00+00:00", Some(951_782_400_000)),
            ("1970-01-01 00:00:00+01:00", None), // before the epoch
            ("1900-02-29 00:00:00+00:00", None), // not a leap year
            ("2018-13-01 00:00:00+00:00", None),
            ("2018-00-01 00:00:00+00:00", None),
            ("2018-04-31 00:00:00+00:00", None),
            ("2018-03-01 24:00:00+00:00", None),
            ("2018-03-01 15:60:00+00:00", None),
            ("2018-03-01 15:29:60+00:00", None),
            ("2018-03-01 15:29:26+24:00", None),
            ("2018-03-01 15:29:26", None), // no offset
            ("2018-03-01 15:29:26+0000", None),
            ("2018-03-01 15:29:26.+00:00", None),
            ("2018-3-1 15:29:26+00:00", None),
            ("+018-03-01 15:29:26+00:00", None),
            ("2018-03-01 15:29:26+00:00x", None),
            ("", None),
            ("é018-03-01 15:29:26+00:00", None),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_expires_after(text).map(Timestamp::as_millis),
                millis,
                "{text}"
            );
        }
        for millis in [0, 1_519_918_166_000, 951_782_400_000, 253_402_300_799_000] {
            let text = format_expires_after(Timestamp::from_millis(millis));
            assert_eq!(
                parse_expires_after(&text),
                Some(Timestamp::from_millis(millis))
            );
        }
        assert_eq!(
            format_expires_after(Timestamp::from_millis(253_402_300_799_000)),
            "9999-12-31 23:59:59+00:00"
        );
    }

    #[test]
    fn login_requests() {
        let base = BaseUrl::parse("https://wa.example.internal:9090/").unwrap();
        let auth = Auth::Basic {
            username: "admin",
            password: "p:ss wörd",
        };
        let request = build_request(&Login::new(), &base, auth).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/v1/users/login");
        assert_eq!(
            request.headers()["authorization"],
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    "admin:p:ss wörd"
                )
            )
        );
        assert!(request.headers()["authorization"].is_sensitive());
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["content-length"], "2");
        assert_eq!(request.body(), &OutgoingBody::Bytes("{}".into()));

        let first = Login::with_new_password("N3w-P\"ss");
        assert!(!first.is_idempotent() && Login::new().is_idempotent());
        let request = build_request(&first, &base, auth).unwrap();
        assert_eq!(
            request.body(),
            &OutgoingBody::Bytes(r#"{"new_password":"N3w-P\"ss"}"#.into())
        );
        assert_eq!(
            format!("{first:?}"),
            "Login { new_password: Some(<redacted>) }"
        );
        assert_eq!(
            format!("{:?}", Login::new()),
            "Login { new_password: None }"
        );

        // Wrong kind of credentials, or a user name Basic auth cannot carry.
        let token = Token::from_parts("t", None);
        assert!(matches!(
            build_request(&Login::new(), &base, Auth::Bearer(&token)),
            Err(InvalidInput::HeaderValue { .. })
        ));
        let colon = Auth::Basic {
            username: "a:b",
            password: "c",
        };
        assert!(build_request(&Login::new(), &base, colon).is_err());
    }

    #[test]
    fn login_answers() {
        let token = login(
            br#"{"users":[{"token":"eyJhbGciOi","expires_after":"2018-03-01 15:29:26+00:00","x":1}],"meta":{}}"#,
        )
        .unwrap();
        assert_eq!(token.expose(), "eyJhbGciOi");
        assert_eq!(
            token.expires_after(),
            Some(Timestamp::from_millis(1_519_918_166_000))
        );
        assert!(!format!("{token:?}").contains("eyJ"));

        let no_expiry = login(br#"{"users":[{"token":"t"}]}"#).unwrap();
        assert_eq!(no_expiry.expires_after(), None);
        assert!(!no_expiry.needs_refresh(Timestamp::from_millis(u64::MAX), u64::MAX));
        // An expiry that cannot be read keeps the token, with the expiry unknown.
        for unreadable in [
            r#""tomorrow""#,
            "1519918166",
            r#""2018-03-01 15:29:26+0000""#,
            "{}",
        ] {
            let body = format!(r#"{{"users":[{{"token":"t","expires_after":{unreadable}}}]}}"#);
            let token = login(body.as_bytes()).unwrap();
            assert_eq!(
                (token.expose(), token.expires_after()),
                ("t", None),
                "{unreadable}"
            );
        }

        for bad in [
            &br#"{"users":[]}"#[..],
            br#"{"users":[{"token":""}]}"#,
            br#"{"users":[{"expires_after":"2018-03-01 15:29:26+00:00"}]}"#,
            br#"{"token":"t"}"#,
            b"",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(login(bad), Err(ResponseError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }

        let denied = parse_response(
            &Login::new(),
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"errors":[{"code":1005,"title":"Access denied"}]}"#,
        )
        .unwrap_err();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            denied.meta_code(),
            Some(crate::onprem::MetaCode::ACCESS_DENIED)
        );
    }

    #[test]
    fn refresh_margin() {
        let token = Token::from_parts("t", Some(Timestamp::from_millis(10_000)));
        assert!(!token.needs_refresh(Timestamp::from_millis(4_999), 5_000));
        assert!(token.needs_refresh(Timestamp::from_millis(5_000), 5_000));
        assert!(token.needs_refresh(Timestamp::from_millis(20_000), 0));
        assert!(token.needs_refresh(Timestamp::from_millis(u64::MAX), u64::MAX));
    }
}
