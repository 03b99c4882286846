//! The envelope's rules (nxcloud-wa-media.md, nxcloud-wa-send.md) through each NXCloud
//! operation's own `parse_response`, fast paths included: a `code` that is not a JSON integer
//! is never success, a success without a usable `data` is malformed, a failure keeps its code
//! whatever its `message` and `data`.

use http::StatusCode;

use crate::ApiCode;
use crate::error::ResponseError;
use crate::operation::Operation;
use crate::operation::parse_response;
use crate::wa::{
    DeleteMedia, GetMedia, MediaKind, MediaSource, MessageDetails, MetaErrorCode, SendMedia,
    UploadMedia,
};

const URL: &str = "https://oss.example/f.png?Expires=1663747602&OSSAccessKeyId=k&Signature=s";

/// How an answer was read, in a word (and the code of an `Api` error).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Api(i64),
    Http,
    Malformed,
    OnPrem,
}

fn outcome<T>(result: Result<T, ResponseError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(ResponseError::Api { code, .. }) => Outcome::Api(code.get()),
        Err(ResponseError::Http { .. }) => Outcome::Http,
        Err(ResponseError::Malformed { .. }) => Outcome::Malformed,
        Err(ResponseError::OnPrem { .. }) => Outcome::OnPrem,
    }
}

/// An operation's `parse_response`, reduced to its [`Outcome`].
type Parse = Box<dyn Fn(StatusCode, &[u8]) -> Outcome>;

/// An mt send of an uploaded image.
fn an_image_send() -> SendMedia {
    SendMedia::new(
        "8618500008399",
        "8613600009759",
        MediaKind::Image,
        MediaSource::id("m1"),
    )
    .with_details(MessageDetails::new().appkey("k"))
}

/// Each NXCloud operation with the `data` its success carries.
fn operations() -> Vec<(&'static str, String, Parse)> {
    fn run<O: Operation + 'static>(op: O) -> Parse {
        Box::new(move |status, body| outcome(parse_response(&op, status, body)))
    }
    let send = an_image_send();
    vec![
        (
            "getMedia",
            format!(r#"{{"mime_type":"image/png","file_name":"f.png","url":"{URL}"}}"#),
            run(GetMedia::new("8615800001795", "m1")),
        ),
        (
            "deleteMedia",
            r#"{"success":true}"#.to_owned(),
            run(DeleteMedia::new("8615800001795", "m1")),
        ),
        (
            "uploadMedia",
            r#"{"id":"new-id"}"#.to_owned(),
            run(UploadMedia::new("8615800001795", "image/png", "a.png", 1)),
        ),
        (
            "mt",
            r#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}"#.to_owned(),
            run(send),
        ),
    ]
}

#[test]
fn a_code_that_is_not_a_json_integer_is_never_success() {
    for (name, data, parse) in operations() {
        let body = |code: &str| format!(r#"{{"code":{code},"message":"ok","data":{data}}}"#);
        assert_eq!(
            parse(StatusCode::OK, body("0").as_bytes()),
            Outcome::Ok,
            "{name}"
        );
        for code in [
            r#""0""#,
            "0.0",
            "-0",
            "0e0",
            "1e0",
            "00",
            "null",
            "false",
            "[0]",
            "{}",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
        ] {
            let body = body(code);
            assert_eq!(
                parse(StatusCode::OK, body.as_bytes()),
                Outcome::Malformed,
                "{name}: {body}"
            );
            assert_eq!(
                parse(StatusCode::BAD_GATEWAY, body.as_bytes()),
                Outcome::Http,
                "{name}: {body}"
            );
        }
        for body in [
            // No code at all, a repeated one, or bytes around the envelope.
            format!(r#"{{"message":"ok","data":{data}}}"#),
            format!(r#"{{"code":1,"code":0,"data":{data}}}"#),
            format!(r#"{{"code":0,"data":{data}}}trailing"#),
            format!(r#"{{"code":0,"data":{data}}}{{"code":0}}"#),
            format!("\u{feff}{{\"code\":0,\"data\":{data}}}"),
        ] {
            assert_eq!(
                parse(StatusCode::OK, body.as_bytes()),
                Outcome::Malformed,
                "{name}: {body}"
            );
        }
        // The extremes of i64 are codes like any other, kept as numbers.
        for code in [i64::MAX, i64::MIN, 4242, -1] {
            let body = format!(r#"{{"code":{code},"message":"m","data":{data}}}"#);
            assert_eq!(
                parse(StatusCode::OK, body.as_bytes()),
                Outcome::Api(code),
                "{name}"
            );
        }
    }
}

#[test]
fn a_success_without_usable_data_is_malformed() {
    for (name, _, parse) in operations() {
        for data in [
            "",
            r#","data":null"#,
            r#","data":[]"#,
            r#","data":"x""#,
            r#","data":7"#,
            r#","data":{}"#,
        ] {
            let body = format!(r#"{{"code":0,"message":"Request successful"{data}}}"#);
            assert_eq!(
                parse(StatusCode::OK, body.as_bytes()),
                Outcome::Malformed,
                "{name}: {body}"
            );
        }
        // A success envelope on an error status is not a success either.
        let body = r#"{"code":0,"message":"Request successful","data":null}"#;
        assert_eq!(
            parse(StatusCode::INTERNAL_SERVER_ERROR, body.as_bytes()),
            Outcome::Http,
            "{name}"
        );
    }
}

#[test]
fn a_failure_keeps_its_code_whatever_its_message_and_data() {
    for (name, data, parse) in operations() {
        for code in [
            -1, 1001, 1003, 1042, 1099, 9000, 9001, 9002, 9006, 9099, 123_456,
        ] {
            for rest in [
                String::new(),
                r#","message":null"#.to_owned(),
                r#","message":7,"data":[1]"#.to_owned(),
                format!(r#","message":"x","data":{data}"#),
            ] {
                let body = format!(r#"{{"code":{code}{rest}}}"#);
                for status in [
                    StatusCode::OK,
                    StatusCode::UNAUTHORIZED,
                    StatusCode::SERVICE_UNAVAILABLE,
                ] {
                    assert_eq!(
                        parse(status, body.as_bytes()),
                        Outcome::Api(code),
                        "{name}: {body}"
                    );
                }
            }
        }
    }
    // No message: an empty one, not a parse failure; 1000-1099 are authentication problems.
    let op = GetMedia::new("8615800001795", "m1");
    let err = parse_response(&op, StatusCode::OK, br#"{"code":1042}"#).unwrap_err();
    let ResponseError::Api { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((code.get(), message.as_str()), (1042, ""));
    assert!(code.is_auth() && !ApiCode::new(1100).is_auth() && !ApiCode::new(999).is_auth());
}

/// 9099: Meta's error code as a number or as a string (the vendor's table and example
/// disagree), and a 9099 without an error object still keeps its code.
#[test]
fn whatsapp_errors_with_either_code_type() {
    let send = an_image_send();
    let meta = |code: &str| {
        format!(
            r#"{{"code":9099,"message":"WhatsApp error","data":{{"error":{{"code":{code},"message":"(#100) Invalid parameter","type":"OAuthException","fbtrace_id":"AmCuD7sOjcEDetBNhlT2cJm","error_data":{{"messaging_product":"whatsapp","details":"Invalid parameter"}}}}}}}}"#
        )
    };
    for (code, read) in [
        ("100", MetaErrorCode::Number(100)),
        (r#""100""#, MetaErrorCode::Number(100)),
        (r#""OAuth-1""#, MetaErrorCode::Text("OAuth-1".into())),
        ("1.5", MetaErrorCode::Text("1.5".into())),
    ] {
        let err = parse_response(&send, StatusCode::OK, meta(code).as_bytes()).unwrap_err();
        let ResponseError::Api {
            code: api,
            whatsapp: Some(whatsapp),
            ..
        } = &err
        else {
            panic!("{code}: {err:?}")
        };
        assert_eq!(*api, ApiCode::WHATSAPP_ERROR);
        assert_eq!(whatsapp.code.as_ref(), Some(&read), "{code}");
        assert_eq!(whatsapp.details.as_deref(), Some("Invalid parameter"));
        assert_eq!(
            whatsapp.fbtrace_id.as_deref(),
            Some("AmCuD7sOjcEDetBNhlT2cJm")
        );
    }
    for data in [
        "",
        r#","data":null"#,
        r#","data":{"error":"x"}"#,
        r#","data":[1]"#,
    ] {
        let body = format!(r#"{{"code":9099,"message":"WhatsApp error"{data}}}"#);
        let err = parse_response(&send, StatusCode::OK, body.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, ResponseError::Api { code, whatsapp: None, .. } if *code == ApiCode::WHATSAPP_ERROR),
            "{body}: {err:?}"
        );
    }
}
