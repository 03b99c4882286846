use md5::{Digest, Md5};
use proptest::prelude::*;

use super::*;

const VENDOR_PARAMS: [(&str, &str); 4] = [
    ("accessKey", "fme2na3kdi3ki"),
    ("ts", "1655710885431"),
    ("bizType", "1"),
    ("action", "send"),
];
const VENDOR_BODY: &str = r#"{"name":"牛小信","id":10001}"#;
const VENDOR_SECRET: &str = "abciiiko2k3";

fn vendor_request() -> SignableRequest<'static> {
    SignableRequest::new(&VENDOR_PARAMS, SignableBody::Json(VENDOR_BODY.as_bytes()))
}

#[test]
fn vendor_vector_stage_1_header_string() {
    assert_eq!(
        vendor_request().header_string().unwrap(),
        "accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431"
    );
}

#[test]
fn vendor_vector_stage_2_body_segment() {
    assert_eq!(
        vendor_request().body_segment(),
        r#"&body={"name":"牛小信","id":10001}"#
    );
}

#[test]
fn vendor_vector_stage_3_full_string() {
    let expected = r#"accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431&body={"name":"牛小信","id":10001}&accessSecret=abciiiko2k3"#;
    let unmasked =
        canonical_string_unmasked(&vendor_request(), &AccessSecret::new(VENDOR_SECRET)).unwrap();
    assert_eq!(unmasked, expected.as_bytes());
    assert_eq!(
        canonical_string(&vendor_request()).unwrap(),
        expected.replace(VENDOR_SECRET, "<redacted>")
    );
}

#[test]
fn vendor_vector_stage_4_signature() {
    let sig = sign(&vendor_request(), &AccessSecret::new(VENDOR_SECRET)).unwrap();
    assert_eq!(sig.as_str(), "87c3560d3331ae23f1021e2025722354");
    assert!(sig.matches("87c3560d3331ae23f1021e2025722354"));
    // The spec's sign is lower-case hex and the server compares exactly: no other case.
    assert!(!sig.matches("87C3560D3331AE23F1021E2025722354"));
    assert!(!sig.matches("87c3560d3331AE23f1021e2025722354"));
    assert!(!sig.matches("87c3560d3331ae23f1021e2025722354 "));
    assert!(!sig.matches("87c3560d3331ae23f1021e2025722355"));
    assert!(!sig.matches("87c3560d"));
}

#[test]
fn signature_debug_is_redacted() {
    let sig = sign(&vendor_request(), &AccessSecret::new(VENDOR_SECRET)).unwrap();
    assert_eq!(format!("{sig:?}"), "Signature(<redacted>)");
}

#[test]
fn upload_is_signed_without_body() {
    // The spec's uploadMedia rule, written out by hand: md5 of headers + secret only.
    let params = [
        ("accessKey", "ak"),
        ("ts", "1700000000000"),
        ("bizType", "2"),
        ("action", "uploadMedia"),
    ];
    let request = SignableRequest::new(&params, SignableBody::Multipart);
    let by_hand = "accessKey=ak&action=uploadMedia&bizType=2&ts=1700000000000&accessSecret=sk";
    let expected = hex::encode(Md5::digest(by_hand.as_bytes()));
    assert_eq!(
        sign(&request, &AccessSecret::new("sk")).unwrap().as_str(),
        expected
    );
}

#[test]
fn sign_parameter_is_never_signed() {
    let with_sign = [("b", "2"), ("sign", "whatever"), ("a", "1")];
    let without = [("b", "2"), ("a", "1")];
    let secret = AccessSecret::new("s");
    assert_eq!(
        sign(
            &SignableRequest::new(&with_sign, SignableBody::Empty),
            &secret
        )
        .unwrap(),
        sign(
            &SignableRequest::new(&without, SignableBody::Empty),
            &secret
        )
        .unwrap()
    );
}

#[test]
fn duplicate_parameter_is_an_error() {
    let params = [("a", "1"), ("b", "2"), ("a", "3")];
    let err = sign(
        &SignableRequest::new(&params, SignableBody::Empty),
        &AccessSecret::new("s"),
    )
    .unwrap_err();
    assert_eq!(err, SigningError::DuplicateParam("a".into()));
    assert!(err.to_string().contains("`a`"));
}

fn arb_params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,11}", "\\PC{0,24}", 0..8)
        .prop_map(|m| m.into_iter().filter(|(k, _)| k != "sign").collect())
}

fn borrow(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn arb_body() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..3,
        // Up to twice `sign`'s stack buffer and more: pieces that cross it and that pass it by.
        prop_oneof![
            Just(Vec::new()),
            "\\PC{0,64}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 200..700),
        ],
    )
}

fn body_of((kind, bytes): &(u8, Vec<u8>)) -> SignableBody<'_> {
    match kind {
        0 => SignableBody::Json(bytes),
        1 => SignableBody::Empty,
        _ => SignableBody::Multipart,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn streamed_signature_is_md5_of_canonical_string(
        params in arb_params(), body in arb_body(), secret in "\\PC{0,32}",
    ) {
        let params = borrow(&params);
        let request = SignableRequest::new(&params, body_of(&body));
        let secret = AccessSecret::new(secret);
        let sig = sign(&request, &secret).unwrap();
        let whole = canonical_string_unmasked(&request, &secret).unwrap();
        prop_assert_eq!(sig.as_str(), hex::encode(Md5::digest(&whole)));
        prop_assert_eq!(sig.as_str().len(), 32);
        prop_assert!(sig.as_str().bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }

    #[test]
    fn names_known_in_order_sign_the_same(params in arb_params(), body in arb_body(), secret in "\\PC{0,32}") {
        // `arb_params` are distinct, sorted and without `sign`, as `new_in_order` requires.
        let params = borrow(&params);
        let secret = AccessSecret::new(secret);
        let known = SignableRequest::new_in_order(&params, body_of(&body));
        let checked = SignableRequest::new(&params, body_of(&body));
        prop_assert_eq!(sign(&known, &secret).unwrap(), sign(&checked, &secret).unwrap());
        prop_assert_eq!(canonical_string(&known).unwrap(), canonical_string(&checked).unwrap());
    }

    #[test]
    fn canonical_string_is_built_as_the_spec_says(
        params in arb_params(), body in arb_body(), secret in "[a-z0-9]{1,16}",
    ) {
        let borrowed = borrow(&params);
        let request = SignableRequest::new(&borrowed, body_of(&body));
        // Written independently of the signer: sort, join, append.
        let mut sorted = params.clone();
        sorted.sort();
        let mut expected = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&").into_bytes();
        if body.0 == 0 && !body.1.is_empty() {
            expected.extend_from_slice(b"&body=");
            expected.extend_from_slice(&body.1);
        }
        expected.extend_from_slice(format!("&accessSecret={secret}").as_bytes());
        let secret = AccessSecret::new(secret);
        prop_assert_eq!(canonical_string_unmasked(&request, &secret).unwrap(), expected);
    }

    #[test]
    fn insertion_order_never_changes_the_signature(
        params in arb_params(), body in arb_body(), secret in "\\PC{0,16}", seed in any::<u64>(),
    ) {
        let mut shuffled = params.clone();
        // A deterministic shuffle from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let secret = AccessSecret::new(secret);
        let a = borrow(&params);
        let b = borrow(&shuffled);
        prop_assert_eq!(
            sign(&SignableRequest::new(&a, body_of(&body)), &secret).unwrap(),
            sign(&SignableRequest::new(&b, body_of(&body)), &secret).unwrap()
        );
    }

    #[test]
    fn any_changed_byte_changes_the_signature(
        params in arb_params(), body in "[ -~]{1,64}", secret in "[ -~]{1,16}",
        which in 0usize..3, pos in any::<prop::sample::Index>(), delta in 1u8..95,
    ) {
        let bump = |s: &str| -> String {
            let mut bytes = s.as_bytes().to_vec();
            let i = pos.index(bytes.len());
            bytes[i] = b' ' + ((bytes[i] - b' ' + delta) % 95);
            String::from_utf8(bytes).unwrap()
        };
        let ascii_params: Vec<(String, String)> =
            params.into_iter().map(|(k, v)| (k, v.chars().filter(|c| (' '..='~').contains(c)).collect())).collect();
        let original = sign(
            &SignableRequest::new(&borrow(&ascii_params), SignableBody::Json(body.as_bytes())),
            &AccessSecret::new(secret.clone()),
        ).unwrap();
        let (params2, body2, secret2) = match which {
            0 => match ascii_params.iter().position(|(_, v)| !v.is_empty()) {
                Some(i) => {
                    let mut p = ascii_params.clone();
                    p[i].1 = bump(&p[i].1);
                    (p, body.clone(), secret.clone())
                }
                None => (ascii_params.clone(), bump(&body), secret.clone()),
            },
            1 => (ascii_params.clone(), bump(&body), secret.clone()),
            _ => (ascii_params.clone(), body.clone(), bump(&secret)),
        };
        let changed = sign(
            &SignableRequest::new(&borrow(&params2), SignableBody::Json(body2.as_bytes())),
            &AccessSecret::new(secret2),
        ).unwrap();
        prop_assert_ne!(original, changed);
    }

    #[test]
    fn empty_and_multipart_bodies_add_no_body_segment(params in arb_params(), secret in "[a-z]{0,8}") {
        let params = borrow(&params);
        let secret = AccessSecret::new(secret);
        for body in [SignableBody::Empty, SignableBody::Multipart, SignableBody::Json(b"")] {
            let request = SignableRequest::new(&params, body);
            prop_assert_eq!(request.body_segment(), "");
            let whole = canonical_string_unmasked(&request, &secret).unwrap();
            prop_assert!(!whole.windows(6).any(|w| w == b"&body="));
        }
    }
}
