//! NXCloud's numeric codes: the envelope's `code` and the `bizType` header.
//!
//! Both are open newtypes (as quinn does for transport error codes): a value this library has
//! never heard of survives intact, and the named constants are just the ones we know.

use std::fmt;

/// The `code` of NXCloud's `{code, message, data}` answer envelope.
///
/// ```
/// use nx_protocol::ApiCode;
/// let code = ApiCode::new(1003);
/// assert_eq!(code, ApiCode::INVALID_SIGNATURE);
/// assert!(code.is_auth() && !code.is_retryable());
/// assert!(code.to_string().starts_with("1003 invalid signature"));
/// // A code nobody has documented yet keeps its number.
/// assert_eq!(ApiCode::new(1042).to_string(), "1042 unknown authentication problem: check accessKey, accessSecret, ts and sign");
/// ```
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ApiCode(i64);

impl ApiCode {
    /// 0: the request succeeded.
    pub const SUCCESS: Self = Self(0);
    /// -1: "Request failed", a vendor-side failure (the spec says: contact support).
    ///
    /// This SDK's reading, not the spec's: for getMedia and deleteMedia it may also mean an
    /// unknown or already deleted media id (assumed from observed behaviour; the spec does not
    /// say so).
    pub const REQUEST_FAILED: Self = Self(-1);
    /// 1001: a common header (accessKey, ts, bizType, action, sign) is missing.
    pub const MISSING_PARAMETERS: Self = Self(1001);
    /// 1002: wrong bizType or action, or a wrong body parameter.
    pub const PARAMETER_ERROR: Self = Self(1002);
    /// 1003: the signature does not match.
    pub const INVALID_SIGNATURE: Self = Self(1003);
    /// 1004: `ts` is not in milliseconds or differs from the server's clock by over 60 s.
    pub const TIMESTAMP_EXPIRED: Self = Self(1004);
    /// 1005: unknown accessKey, or the account lacks this business line.
    pub const INSUFFICIENT_PERMISSIONS: Self = Self(1005);
    /// 9000: a required body field is missing.
    pub const PARAMETER_EXCEPTION: Self = Self(9000);
    /// 9001: a system business error on the vendor's side.
    pub const SYSTEM_BUSINESS_ERROR: Self = Self(9001);
    /// 9002: `business_phone` is not a WhatsApp business number.
    pub const MERCHANT_PHONE_ERROR: Self = Self(9002);
    /// 9003 (mt): the application (`appkey`) does not exist or is unavailable.
    pub const APP_UNAVAILABLE: Self = Self(9003);
    /// 9004 (mt): the application has no pricing for the recipient's country.
    pub const NO_COUNTRY_PRICING: Self = Self(9004);
    /// 9005 (mt): the account's balance is insufficient.
    pub const INSUFFICIENT_BALANCE: Self = Self(9005);
    /// 9006: the WhatsApp number is not bound to the application.
    pub const NOT_BOUND: Self = Self(9006);
    /// 9007 (mt): the vendor's downstream communication endpoint failed.
    pub const DOWNSTREAM_ERROR: Self = Self(9007);
    /// 9099 (mt): WhatsApp (Meta) refused the message; Meta's error object is in `data.error`
    /// and is kept in [`crate::ResponseError::Api`]'s `whatsapp` field.
    pub const WHATSAPP_ERROR: Self = Self(9099);

    /// Wraps any code.
    pub const fn new(code: i64) -> Self {
        Self(code)
    }

    /// The number.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Whether this is success (0).
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// An authentication problem: the vendor documents "1000~100X"; we treat all of 1000..=1099
    /// that way, known or not.
    pub const fn is_auth(self) -> bool {
        matches!(self.0, 1000..=1099)
    }

    /// Whether the same request, re-signed, may succeed if simply sent again.
    ///
    /// - 9001 (system business error) is a vendor-side failure that is often transient: yes.
    /// - -1 (request failed): the spec calls it a vendor-side failure to take to support, and
    ///   (this SDK's reading, observed rather than documented) it may also be the answer for a
    ///   media id that does not exist, where repeating it only repeats the answer: no.
    /// - 1004 (timestamp expired) is not retryable *as is*: the clock must be corrected first,
    ///   which [`crate::policy::retry`] handles as its own case (see [`ApiCode::is_clock_skew`]).
    /// - Every other auth code (1001-1003, 1005) and 9000/9002/9006 describe the request or the
    ///   account; resending cannot change them: no. So are 9003-9005 and 9099 (mt's application,
    ///   pricing, balance and Meta's refusal). 9007 (a vendor-side downstream failure) may be
    ///   transient, but it is only answered to sends, which are not idempotent and so are never
    ///   resent on an answer (see [`crate::policy::retry`]): no. Unknown codes: no (we do not
    ///   guess).
    pub const fn is_retryable(self) -> bool {
        self.0 == Self::SYSTEM_BUSINESS_ERROR.0
    }

    /// 1004: the request may succeed once `ts` is corrected for the server's clock.
    pub const fn is_clock_skew(self) -> bool {
        self.0 == Self::TIMESTAMP_EXPIRED.0
    }

    /// What the code means and what to do, in a few words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0 => "request successful",
            -1 => {
                "request failed (vendor-side failure; for getMedia/deleteMedia this may also mean an unknown or already deleted media id): check the id; contact NXCloud support if it persists"
            }
            1001 => {
                "missing parameters: a common header (accessKey, ts, bizType, action, sign) is absent"
            }
            1002 => {
                "parameter error: wrong bizType/action for this endpoint, or a wrong body parameter"
            }
            1003 => {
                "invalid signature: the body signed differs from the body sent, the Content-Type is wrong, or the accessSecret is wrong"
            }
            1004 => {
                "timestamp expired: ts must be milliseconds and within 60 s of NXCloud's clock; check the system clock"
            }
            1005 => {
                "insufficient permissions: unknown accessKey, or the account lacks this business line"
            }
            1000..=1099 => {
                "unknown authentication problem: check accessKey, accessSecret, ts and sign"
            }
            9000 => "parameter exception: a required body field is missing",
            9001 => {
                "system business error on NXCloud's side: retry later, contact NXCloud support if it persists"
            }
            9002 => "merchant phone number error: business_phone is not a WhatsApp business number",
            9003 => {
                "application does not exist or is unavailable: check the appkey (NXCLOUD_APPKEY)"
            }
            9004 => {
                "no country pricing for the application: ask NXCloud to enable the recipient's country"
            }
            9005 => "insufficient account balance: top up the NXCloud account",
            9006 => "WhatsApp number not bound to the application: ask NXCloud to bind it",
            9007 => {
                "downstream communication endpoint exception on NXCloud's side: check whether the message was delivered before sending it again"
            }
            9099 => "WhatsApp (Meta) error: Meta refused the message; see its error",
            _ => "unknown code: see NXCloud's documentation",
        }
    }
}

impl fmt::Display for ApiCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.meaning())
    }
}

impl fmt::Debug for ApiCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiCode({})", self.0)
    }
}

/// The `bizType` header: which NXCloud business line a request belongs to.
///
/// ```
/// use nx_protocol::BizType;
/// assert_eq!(BizType::WHATSAPP.digits().as_str(), "2");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BizType(u32);

impl BizType {
    /// 1: number check.
    pub const NUMBER_CHECK: Self = Self(1);
    /// 2: WhatsApp.
    pub const WHATSAPP: Self = Self(2);
    /// 3: SMS.
    pub const SMS: Self = Self(3);
    /// 4: DID.
    pub const DID: Self = Self(4);
    /// 5: virtual number.
    pub const VIRTUAL_NUMBER: Self = Self(5);
    /// 6: OTA.
    pub const OTA: Self = Self(6);
    /// 7: Viber.
    pub const VIBER: Self = Self(7);

    /// Wraps any business line number.
    pub const fn new(n: u32) -> Self {
        Self(n)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The decimal header value, rendered without allocation.
    pub fn digits(self) -> crate::time::Digits {
        crate::time::Digits::new(u64::from(self.0))
    }
}

impl fmt::Display for BizType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_range_and_unknown_codes_keep_their_number() {
        for n in [1000, 1001, 1005, 1006, 1099] {
            assert!(ApiCode::new(n).is_auth(), "{n}");
        }
        for n in [999, 1100, 0, -1, 9000] {
            assert!(!ApiCode::new(n).is_auth(), "{n}");
        }
        let weird: ApiCode = serde_json::from_str("123456789").unwrap();
        assert_eq!(weird.get(), 123_456_789);
        assert!(weird.to_string().starts_with("123456789 "));
    }

    #[test]
    fn only_transient_vendor_failures_are_retryable() {
        let retryable: Vec<i64> = [
            -1, 0, 1001, 1002, 1003, 1004, 1005, 9000, 9001, 9002, 9003, 9004, 9005, 9006, 9007,
            9099, 4242,
        ]
        .into_iter()
        .filter(|&n| ApiCode::new(n).is_retryable())
        .collect();
        assert_eq!(retryable, [9001]);
        assert!(ApiCode::TIMESTAMP_EXPIRED.is_clock_skew());
    }

    #[test]
    fn request_failed_says_what_the_spec_says_and_hedges_the_rest() {
        let meaning = ApiCode::REQUEST_FAILED.meaning();
        assert!(
            meaning.starts_with("request failed (vendor-side failure; "),
            "{meaning}"
        );
        assert!(
            meaning.contains("this may also mean an unknown or already deleted media id"),
            "{meaning}"
        );
        assert!(meaning.contains("contact NXCloud support"), "{meaning}");
    }
}
