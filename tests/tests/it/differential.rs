//! Differential test: authz's hand-written JWT verifier against `jsonwebtoken::decode`.
//!
//! A structured generator builds tokens (header, payload, signature and encoding variations) for
//! one configured key of each family (HS256, RS256, PS256, ES256, EdDSA); every token goes to
//! `JwtVerifier::verify_at` and to `jsonwebtoken::decode` configured as strictly as it allows.
//! They must agree on accept/refuse, except where authz is documented to be stricter: the one
//! list of those exceptions is [`authz_tests::differential_rule::authz_is_stricter`] (shared with the fuzz target
//! `fuzz/fuzz_targets/differential.rs`). jsonwebtoken refusing what authz accepts is always a
//! failure.
//!
//! jsonwebtoken reads the system clock, so times are generated relative to the real now with
//! margins (≥ 1000 s) far beyond the leeway (30 s on both sides), and a case is re-run if the
//! clock ticked over a second while it was being checked.

use authz_tests::differential_rule as rule;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use authz_core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaEncoding, RsaKeyPair,
};
use aws_lc_rs::{hmac, rsa::KeySize};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::now;
use rule::{Case, authz_is_stricter};

const ISS: &str = "https://issuer.differential.test";
const AUD: &str = "api.differential.test";
const KID: &str = "k1";
const LEEWAY: u64 = 30;

// ---- keys ---------------------------------------------------------------------------------------

enum Signer {
    Hmac(Box<hmac::Key>),
    Rsa(&'static RsaKeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Hmac(k) => hmac::sign(k, message).as_ref().to_vec(),
            Signer::Rsa(k, encoding) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(*encoding, &SystemRandom::new(), message, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(k) => k.sign(&SystemRandom::new(), message).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(message).as_ref().to_vec(),
        }
    }
}

/// One configuration, the same on both sides: one key, one allowed algorithm.
struct Setup {
    alg: Algorithm,
    signer: Signer,
    /// A key of the same family that nobody configured.
    stranger: Signer,
    keys: KeySet,
    verifier: JwtVerifier,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

fn validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = LEEWAY;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v
}

fn setup(
    alg: Algorithm,
    signer: Signer,
    stranger: Signer,
    key: VerificationKey,
    decoding: jsonwebtoken::DecodingKey,
) -> Setup {
    let jalg: jsonwebtoken::Algorithm = alg.as_str().parse().unwrap();
    Setup {
        alg,
        signer,
        stranger,
        keys: KeySet::new(vec![key.with_kid(KID)]).unwrap(),
        verifier: JwtVerifier::builder(ISS, AUD, [alg])
            .leeway(Duration::from_secs(LEEWAY))
            .build()
            .unwrap(),
        decoding,
        validation: validation(jalg),
    }
}

fn ec_key() -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
}

fn ed_key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn setups() -> Vec<Setup> {
    let rng = SystemRandom::new();
    let secret = |rng: &SystemRandom| {
        let mut s = [0u8; 32];
        rng.fill(&mut s).unwrap();
        s
    };
    let (s1, s2) = (secret(&rng), secret(&rng));
    let rsa: &'static RsaKeyPair = Box::leak(Box::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()));
    let rsa2: &'static RsaKeyPair = Box::leak(Box::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()));
    let rsa_der = rsa.public_key().as_ref().to_vec();
    let (ec, ec2) = (ec_key(), ec_key());
    let ec_point = ec.public_key().as_ref().to_vec();
    let (ed, ed2) = (ed_key(), ed_key());
    let ed_raw = ed.public_key().as_ref().to_vec();
    vec![
        setup(
            Algorithm::HS256,
            Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &s1))),
            Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &s2))),
            VerificationKey::hmac(Algorithm::HS256, &s1).unwrap(),
            jsonwebtoken::DecodingKey::from_secret(&s1).unwrap(),
        ),
        setup(
            Algorithm::RS256,
            Signer::Rsa(rsa, &RSA_PKCS1_SHA256),
            Signer::Rsa(rsa2, &RSA_PKCS1_SHA256),
            VerificationKey::from_der(Algorithm::RS256, &rsa_der).unwrap(),
            jsonwebtoken::DecodingKey::from_rsa_der(&rsa_der),
        ),
        setup(
            Algorithm::PS256,
            Signer::Rsa(rsa, &RSA_PSS_SHA256),
            Signer::Rsa(rsa2, &RSA_PSS_SHA256),
            VerificationKey::from_der(Algorithm::PS256, &rsa_der).unwrap(),
            jsonwebtoken::DecodingKey::from_rsa_der(&rsa_der),
        ),
        setup(
            Algorithm::ES256,
            Signer::Ec(ec),
            Signer::Ec(ec2),
            VerificationKey::from_der(Algorithm::ES256, &ec_point).unwrap(),
            jsonwebtoken::DecodingKey::from_ec_der(&ec_point),
        ),
        setup(
            Algorithm::EdDSA,
            Signer::Ed(ed),
            Signer::Ed(ed2),
            VerificationKey::from_der(Algorithm::EdDSA, &ed_raw).unwrap(),
            jsonwebtoken::DecodingKey::from_ed_der(&ed_raw),
        ),
    ]
}

// ---- the generator ------------------------------------------------------------------------------

/// `alg` in the header.
#[derive(Debug, Clone)]
enum Alg {
    /// The configured algorithm.
    Configured,
    /// Another name (supported elsewhere, wrong case, unknown, `none`).
    Named(&'static str),
    /// Not a string.
    Raw(&'static str),
    Missing,
}

#[derive(Debug, Clone)]
enum Kid {
    Absent,
    Right,
    Named(&'static str),
    Raw(&'static str),
}

#[derive(Debug, Clone)]
enum Crit {
    Absent,
    /// `crit` with this raw value.
    Raw(&'static str),
    /// `"crit":["b64"],"b64":true`: the one extension jsonwebtoken understands.
    B64,
    /// `b64` without `crit`.
    B64Alone(&'static str),
}

/// How a JSON object is damaged.
#[derive(Debug, Clone)]
enum Shape {
    Object,
    /// Replaced by this (not an object, truncated...).
    Replaced(&'static str),
    /// This text appended after the object.
    Trailing(&'static str),
    /// A member whose string value holds invalid UTF-8.
    BadUtf8Value,
    /// A member whose name holds invalid UTF-8.
    BadUtf8Name,
}

#[derive(Debug, Clone)]
struct HeaderSpec {
    alg: Alg,
    kid: Kid,
    typ: Option<&'static str>,
    crit: Crit,
    extras: Vec<(&'static str, &'static str)>,
    /// A second occurrence of a member (name, raw value), appended.
    duplicate: Option<(&'static str, &'static str)>,
    alg_last: bool,
    shape: Shape,
}

/// A NumericDate claim.
#[derive(Debug, Clone)]
enum Date {
    Missing,
    Past(u32),
    Future(u32),
    PastFloat(u32, u8),
    FutureFloat(u32, u8),
    /// A future time in exponent notation.
    FutureExp(u32),
    Raw(&'static str),
}

/// A string claim (`iss`, `aud`).
#[derive(Debug, Clone)]
enum Text {
    Right,
    /// The right value, written with JSON escapes.
    RightEscaped,
    Wrong(&'static str),
    Missing,
    Raw(&'static str),
    ArrayWithRight,
    ArrayWithoutRight,
}

#[derive(Debug, Clone)]
struct PayloadSpec {
    exp: Date,
    nbf: Date,
    iat: Date,
    iss: Text,
    aud: Text,
    sub: Option<&'static str>,
    extras: Vec<(&'static str, &'static str)>,
    /// Name of a member to repeat, and whether the repeat has the same value.
    duplicate: Option<(&'static str, bool)>,
    oversize: bool,
    shape: Shape,
}

#[derive(Debug, Clone)]
enum Sig {
    Right,
    FlipBit(u16),
    Truncate(u8),
    Append,
    Empty,
    /// Signed by a key of the same family that is not configured.
    Stranger,
}

/// Damage to the compact serialization.
#[derive(Debug, Clone)]
enum Encoding {
    Intact,
    /// `=` padding on segment 0, 1 or 2.
    Pad(u8),
    /// The standard alphabet (`+`, `/`) instead of the URL-safe one, in segment n.
    StandardAlphabet(u8),
    /// The last character of segment n changed so that its unused bits are not zero.
    TrailingBits(u8),
    /// A character that is not base64 inserted at a position.
    Insert(u16, char),
    DropSignature,
    ExtraSegment(&'static str),
}

#[derive(Debug, Clone)]
struct Spec {
    setup: usize,
    header: HeaderSpec,
    payload: PayloadSpec,
    sig: Sig,
    encoding: Encoding,
}

fn alg() -> impl Strategy<Value = Alg> {
    prop_oneof![
        24 => Just(Alg::Configured),
        4 => select(&["HS256", "HS384", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"][..]).prop_map(Alg::Named),
        3 => select(&["none", "None", "hs256", "Hs256", "HS257", "ES512", "RSA-OAEP", "ED25519", "", "HS256 "][..])
            .prop_map(Alg::Named),
        1 => select(&["256", "null", "[\"HS256\"]", "{\"name\":\"HS256\"}", "true"][..]).prop_map(Alg::Raw),
        1 => Just(Alg::Missing),
    ]
}

fn kid() -> impl Strategy<Value = Kid> {
    prop_oneof![
        8 => Just(Kid::Absent),
        8 => Just(Kid::Right),
        2 => select(&["k2", "K1", "k1 ", "", "../k1"][..]).prop_map(Kid::Named),
        1 => select(&["1", "null", "[\"k1\"]", "{}"][..]).prop_map(Kid::Raw),
    ]
}

fn typ() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        8 => Just(None),
        8 => Just(Some("\"JWT\"")),
        6 => select(&["\"jwt\"", "\"at+jwt\"", "\"application/at+JWT\"", "\"application/jwt\"", "null"][..]).prop_map(Some),
        2 => select(&["\"secevent+jwt\"", "\"dpop+jwt\"", "\"JOSE\"", "\"logout+jwt\"", "\"id_token+jwt\""][..]).prop_map(Some),
        1 => select(&["5", "[\"JWT\"]", "{}"][..]).prop_map(Some),
    ]
}

fn crit() -> impl Strategy<Value = Crit> {
    prop_oneof![
        30 => Just(Crit::Absent),
        1 => select(&["[\"exp\"]", "[]", "\"b64\"", "[\"b64\",\"b64\"]", "null"][..]).prop_map(Crit::Raw),
        1 => Just(Crit::B64),
        1 => select(&["true", "false", "\"yes\""][..]).prop_map(Crit::B64Alone),
    ]
}

/// Header members authz does not read; some registered with their right type, some with a
/// wrong one, some private.
const HEADER_EXTRAS: &[(&str, &str)] = &[
    ("x-note", "\"hello\""),
    ("ver", "2"),
    ("nested", "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"}"),
    ("flag", "false"),
    ("cty", "\"JWT\""),
    ("jku", "\"https://attacker.example/jwks.json\""),
    ("x5u", "\"https://attacker.example/cert.pem\""),
    ("x5t", "\"dGh1bWJwcmludA\""),
    ("jwk", "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"),
    ("x5c", "[\"MIIB\"]"),
    ("zip", "\"DEF\""),
    ("enc", "\"A128GCM\""),
    ("nonce", "\"n-0S6_WzA2Mj\""),
    ("url", "\"https://api.example/\""),
    // Registered header parameters with the wrong JSON type.
    ("cty", "5"),
    ("jku", "1"),
    ("x5c", "\"MIIB\""),
    ("jwk", "\"not-a-jwk\""),
    ("x5t", "[]"),
    ("zip", "7"),
    ("url", "{}"),
    // Grammatical JSON that serde_json's Value refuses.
    ("x-big", "1e999"),
    ("x-surrogate", "\"\\ud800x\""),
];

fn header() -> impl Strategy<Value = HeaderSpec> {
    (
        alg(),
        kid(),
        typ(),
        crit(),
        proptest::collection::vec(select(HEADER_EXTRAS), 0..3),
        prop_oneof![
            12 => Just(None),
            1 => select(&[
                ("alg", "\"HS256\""),
                ("alg", "\"none\""),
                ("kid", "\"k1\""),
                ("kid", "\"k2\""),
                ("typ", "\"JWT\""),
                ("cty", "\"JWT\""),
                ("x-note", "1"),
            ][..])
            .prop_map(Some),
        ],
        any::<bool>(),
        prop_oneof![
            40 => Just(Shape::Object),
            1 => select(&["[]", "\"alg\"", "null", "{\"alg\":\"HS256\"", ""][..]).prop_map(Shape::Replaced),
            1 => select(&[" ", "\n", "}", ",", " x"][..]).prop_map(Shape::Trailing),
            1 => Just(Shape::BadUtf8Value),
            1 => Just(Shape::BadUtf8Name),
        ],
    )
        .prop_map(
            |(alg, kid, typ, crit, extras, duplicate, alg_last, shape)| HeaderSpec {
                alg,
                kid,
                typ,
                crit,
                extras,
                duplicate,
                alg_last,
                shape,
            },
        )
}

fn date(missing: u32) -> impl Strategy<Value = Date> {
    let far = 1000u32..10_000_000;
    prop_oneof![
        missing => Just(Date::Missing),
        4 => far.clone().prop_map(Date::Past),
        8 => far.clone().prop_map(Date::Future),
        1 => (far.clone(), 1u8..100).prop_map(|(d, f)| Date::PastFloat(d, f)),
        2 => (far.clone(), 1u8..100).prop_map(|(d, f)| Date::FutureFloat(d, f)),
        1 => far.prop_map(Date::FutureExp),
        2 => select(&[
            "\"4102444800\"", "null", "true", "[4102444800]", "{}", "0", "-1", "-1e9", "-0.5",
            "1e20", "18446744073709551615", "18446744073709551616", "1e400", "4102444800e0",
        ][..])
        .prop_map(Date::Raw),
    ]
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        24 => Just(Text::Right),
        1 => Just(Text::RightEscaped),
        2 => select(&["https://evil.example", "https://issuer.differential.test/", "HTTPS://ISSUER.DIFFERENTIAL.TEST", "api", ""][..])
            .prop_map(Text::Wrong),
        1 => Just(Text::Missing),
        1 => select(&["5", "null", "{}", "true", "[5]", "[]", "[null]"][..]).prop_map(Text::Raw),
        2 => Just(Text::ArrayWithRight),
        1 => Just(Text::ArrayWithoutRight),
    ]
}

/// Payload members authz does not check (except the ID-token hashes and the duplicates).
const CLAIM_EXTRAS: &[(&str, &str)] = &[
    ("roles", "[\"viewer\",\"admin\"]"),
    ("scope", "\"data:read model:run\""),
    ("scp", "[\"data:read\"]"),
    ("azp", "\"client-1\""),
    ("jti", "\"b0c1\""),
    ("client_id", "\"client-1\""),
    ("nonce", "\"n-0S6_WzA2Mj\""),
    ("at_hash", "\"77QmUPtjPfzWtF2AnpK9RQ\""),
    ("c_hash", "\"LDktKdoQak3Pk0cnXxCltA\""),
    ("s_hash", "\"LDktKdoQak3Pk0cnXxCltA\""),
    (
        "nested",
        "{\"realm_access\":{\"roles\":[\"a\"]},\"n\":[1.5,-2,3e2]}",
    ),
    ("x-big", "1e999"),
    ("x-surrogate", "\"\\ud800x\""),
    ("x-escapes", "\"\\u00e9\\n\\\"\\/\""),
    ("x-unicode", "\"\u{e9}\u{1F600}\""),
];

fn payload() -> impl Strategy<Value = PayloadSpec> {
    (
        date(1),
        date(12),
        date(6),
        text(),
        text(),
        prop_oneof![
            4 => Just(None),
            8 => Just(Some("\"user-1\"")),
            2 => select(&["\"\"", "5", "null", "[\"user-1\"]", "{}", "\"\\ud800x\""][..]).prop_map(Some),
        ],
        proptest::collection::vec(select(CLAIM_EXTRAS), 0..3),
        prop_oneof![
            12 => Just(None),
            1 => (
                select(&["exp", "iss", "aud", "sub", "nbf", "iat", "scope", "scp", "roles", "jti"][..]),
                any::<bool>()
            )
                .prop_map(Some),
        ],
        prop::bool::weighted(0.02),
        prop_oneof![
            60 => Just(Shape::Object),
            1 => select(&["[]", "\"claims\"", "null", "{\"exp\":4102444800", "", "42"][..]).prop_map(Shape::Replaced),
            1 => select(&[" ", "\r\n", "}", ",", " x", "{}"][..]).prop_map(Shape::Trailing),
            1 => Just(Shape::BadUtf8Value),
            1 => Just(Shape::BadUtf8Name),
        ],
    )
        .prop_map(|(exp, nbf, iat, iss, aud, sub, extras, duplicate, oversize, shape)| PayloadSpec {
            exp,
            nbf,
            iat,
            iss,
            aud,
            sub,
            extras,
            duplicate,
            oversize,
            shape,
        })
}

fn sig() -> impl Strategy<Value = Sig> {
    prop_oneof![
        20 => Just(Sig::Right),
        1 => any::<u16>().prop_map(Sig::FlipBit),
        1 => (1u8..40).prop_map(Sig::Truncate),
        1 => Just(Sig::Append),
        1 => Just(Sig::Empty),
        2 => Just(Sig::Stranger),
    ]
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        30 => Just(Encoding::Intact),
        1 => (0u8..3).prop_map(Encoding::Pad),
        1 => (0u8..3).prop_map(Encoding::StandardAlphabet),
        1 => (0u8..3).prop_map(Encoding::TrailingBits),
        1 => (any::<u16>(), select(&[' ', '\n', '=', '+', '/', '.', '~', '\u{e9}'][..]))
            .prop_map(|(i, c)| Encoding::Insert(i, c)),
        1 => Just(Encoding::DropSignature),
        1 => select(&["", "x", "eyJ9", "."][..]).prop_map(Encoding::ExtraSegment),
    ]
}

/// A variation in every dimension at once mostly makes tokens that both sides refuse; so two
/// cases in three keep one dimension's variation (or none) and make everything else valid.
fn spec() -> impl Strategy<Value = Spec> {
    (
        0usize..5,
        header(),
        payload(),
        sig(),
        encoding(),
        prop_oneof![1 => Just(None), 2 => (0u8..8).prop_map(Some)],
    )
        .prop_map(|(setup, mut header, mut payload, mut sig, mut encoding, focus)| {
            if let Some(keep) = focus {
                if keep != 0 {
                    header.alg = Alg::Configured;
                    header.kid = Kid::Right;
                    header.typ = Some("\"JWT\"");
                    header.crit = Crit::Absent;
                }
                if keep != 1 {
                    header.extras.clear();
                    header.duplicate = None;
                    header.shape = Shape::Object;
                }
                if keep != 2 {
                    payload.exp = Date::Future(5000);
                    payload.nbf = Date::Missing;
                    payload.iat = Date::Past(5000);
                }
                if keep != 3 {
                    payload.iss = Text::Right;
                    payload.aud = Text::Right;
                    payload.sub = Some("\"user-1\"");
                }
                if keep != 4 {
                    payload.extras.clear();
                    payload.duplicate = None;
                    payload.oversize = false;
                    payload.shape = Shape::Object;
                }
                if keep != 5 {
                    sig = Sig::Right;
                }
                if keep != 6 {
                    encoding = Encoding::Intact;
                }
            }
            Spec {
                setup,
                header,
                payload,
                sig,
                encoding,
            }
        })
}

// ---- building the token -------------------------------------------------------------------------

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JSON object from raw members (duplicates kept, order kept), damaged as `shape` says.
fn object(members: &[(String, String)], shape: &Shape) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", quoted(k)).into_bytes())
        .collect();
    match shape {
        Shape::BadUtf8Value => parts.push(b"\"x-bytes\":\"ab\xff\xfecd\"".to_vec()),
        Shape::BadUtf8Name => parts.push(b"\"x-\xc3\x28\":1".to_vec()),
        _ => {}
    }
    let mut out = b"{".to_vec();
    out.extend(parts.join(&b","[..]));
    out.push(b'}');
    match shape {
        Shape::Replaced(r) => r.as_bytes().to_vec(),
        Shape::Trailing(t) => {
            out.extend_from_slice(t.as_bytes());
            out
        }
        _ => out,
    }
}

fn header_json(h: &HeaderSpec, configured: Algorithm) -> Vec<u8> {
    let mut m: Vec<(String, String)> = Vec::new();
    let alg = match &h.alg {
        Alg::Configured => Some(quoted(configured.as_str())),
        Alg::Named(n) => Some(quoted(n)),
        Alg::Raw(r) => Some(r.to_string()),
        Alg::Missing => None,
    };
    if let Some(a) = &alg
        && !h.alg_last
    {
        m.push(("alg".into(), a.clone()));
    }
    if let Some(t) = h.typ {
        m.push(("typ".into(), t.into()));
    }
    match &h.kid {
        Kid::Absent => {}
        Kid::Right => m.push(("kid".into(), quoted(KID))),
        Kid::Named(n) => m.push(("kid".into(), quoted(n))),
        Kid::Raw(r) => m.push(("kid".into(), r.to_string())),
    }
    match &h.crit {
        Crit::Absent => {}
        Crit::Raw(r) => m.push(("crit".into(), r.to_string())),
        Crit::B64 => {
            m.push(("crit".into(), "[\"b64\"]".into()));
            m.push(("b64".into(), "true".into()));
        }
        Crit::B64Alone(r) => m.push(("b64".into(), r.to_string())),
    }
    for (k, v) in &h.extras {
        if !m.iter().any(|(n, _)| n == k) {
            m.push((k.to_string(), v.to_string()));
        }
    }
    if let Some(a) = alg
        && h.alg_last
    {
        m.push(("alg".into(), a));
    }
    if let Some((k, v)) = h.duplicate {
        m.push((k.into(), v.into()));
    }
    object(&m, &h.shape)
}

fn date_json(d: &Date, now: u64) -> Option<String> {
    Some(match d {
        Date::Missing => return None,
        Date::Past(s) => (now - u64::from(*s)).to_string(),
        Date::Future(s) => (now + u64::from(*s)).to_string(),
        Date::PastFloat(s, f) => format!("{}.{f:02}", now - u64::from(*s)),
        Date::FutureFloat(s, f) => format!("{}.{f:02}", now + u64::from(*s)),
        Date::FutureExp(s) => format!("{:e}", (now + u64::from(*s)) as f64),
        Date::Raw(r) => r.to_string(),
    })
}

fn text_json(t: &Text, right: &str) -> Option<String> {
    Some(match t {
        Text::Right => quoted(right),
        Text::RightEscaped => {
            // Every character as a \u escape: the same string to any JSON parser.
            let escaped: String = right.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            format!("\"{escaped}\"")
        }
        Text::Wrong(w) => quoted(w),
        Text::Missing => return None,
        Text::Raw(r) => r.to_string(),
        Text::ArrayWithRight => format!("[\"someone-else\",{}]", quoted(right)),
        Text::ArrayWithoutRight => "[\"someone-else\"]".into(),
    })
}

fn payload_json(p: &PayloadSpec, now: u64) -> Vec<u8> {
    let mut m: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.push((k.into(), v));
        }
    };
    put("iss", text_json(&p.iss, ISS));
    put("sub", p.sub.map(str::to_string));
    put("aud", text_json(&p.aud, AUD));
    put("exp", date_json(&p.exp, now));
    put("nbf", date_json(&p.nbf, now));
    put("iat", date_json(&p.iat, now));
    for (k, v) in &p.extras {
        if !m.iter().any(|(n, _)| n == k) {
            m.push((k.to_string(), v.to_string()));
        }
    }
    if let Some((name, same)) = p.duplicate {
        let existing = m.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let value = match (existing, same) {
            (Some(v), true) => v,
            // A different, individually valid value.
            _ => match name {
                "exp" | "iat" | "nbf" => (now - 5000).to_string(),
                "iss" => quoted(ISS),
                "aud" => quoted(AUD),
                "sub" => quoted("user-2"),
                _ => quoted("other"),
            },
        };
        m.push((name.into(), value));
    }
    if p.oversize {
        m.push(("padding".into(), quoted(&"x".repeat(9000))));
    }
    object(&m, &p.shape)
}

fn token(spec: &Spec, setup: &Setup, now: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(header_json(&spec.header, setup.alg));
    let payload = URL_SAFE_NO_PAD.encode(payload_json(&spec.payload, now));
    let input = format!("{header}.{payload}");
    let mut sig = match spec.sig {
        Sig::Stranger => setup.stranger.sign(input.as_bytes()),
        _ => setup.signer.sign(input.as_bytes()),
    };
    match spec.sig {
        Sig::FlipBit(i) => {
            let bit = usize::from(i) % (sig.len() * 8);
            sig[bit / 8] ^= 1 << (bit % 8);
        }
        Sig::Truncate(n) => sig.truncate(sig.len().saturating_sub(usize::from(n))),
        Sig::Append => sig.push(0),
        Sig::Empty => sig.clear(),
        Sig::Right | Sig::Stranger => {}
    }
    let mut segments = [header, payload, URL_SAFE_NO_PAD.encode(&sig)];
    match &spec.encoding {
        Encoding::Intact => {}
        Encoding::Pad(i) => {
            let s = &mut segments[usize::from(*i)];
            let pad = (4 - s.len() % 4) % 4;
            s.push_str(&"=".repeat(if pad == 0 { 2 } else { pad }));
        }
        Encoding::StandardAlphabet(i) => {
            let s = &mut segments[usize::from(*i)];
            *s = if s.contains(['-', '_']) {
                s.replace('-', "+").replace('_', "/")
            } else {
                format!("{s}+")
            };
        }
        Encoding::TrailingBits(i) => {
            let s = &mut segments[usize::from(*i)];
            // With 2 or 3 characters in the last quantum, the last one carries unused bits.
            if s.len() % 4 >= 2 {
                let last = s.pop().unwrap();
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let v = alphabet.iter().position(|&c| c == last as u8).unwrap();
                s.push(alphabet[v | 1] as char);
            } else {
                s.push('A');
            }
        }
        Encoding::Insert(..) | Encoding::DropSignature | Encoding::ExtraSegment(_) => {}
    }
    let mut t = segments.join(".");
    match &spec.encoding {
        Encoding::Insert(i, c) => {
            let at = usize::from(*i) % (t.len() + 1);
            t.insert(at, *c);
        }
        Encoding::DropSignature => t.truncate(t.rfind('.').unwrap()),
        Encoding::ExtraSegment(s) => {
            t.push('.');
            t.push_str(s);
        }
        _ => {}
    }
    t
}

// ---- the comparison -----------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    both_accept: usize,
    both_refuse: usize,
    stricter: BTreeMap<&'static str, usize>,
}

/// Verifies `spec` with both libraries at one and the same second. jsonwebtoken decodes the
/// claims into `IgnoredAny`: `verify_at` reads no application claim either, so neither side adds
/// checks of its own beyond the registered claims (an application's claim struct would add the
/// same checks to both).
fn verdicts(spec: &Spec, setup: &Setup) -> (String, Result<(), String>, Result<(), String>, u64) {
    loop {
        let now = now();
        let token = token(spec, setup, now);
        let jwt = jsonwebtoken::decode::<serde::de::IgnoredAny>(
            token.as_bytes(),
            &setup.decoding,
            &setup.validation,
        )
        .map(|_| ())
        .map_err(|e| format!("{:?}", e.kind()));
        let authz = setup
            .verifier
            .verify_at(&token, &setup.keys, now)
            .map(|_| ())
            .map_err(|e| format!("{:?}", e.kind()));
        if crate::common::now() == now {
            return (token, authz, jwt, now);
        }
    }
}

/// The token's header and payload as text, for failure messages.
fn readable(token: &str) -> String {
    let mut parts = token.split('.');
    let mut show = |name: &str| {
        let text = parts
            .next()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .map_or_else(
                || "(not base64url)".to_string(),
                |b| String::from_utf8_lossy(&b).into_owned(),
            );
        format!("  {name}: {text}\n")
    };
    let header = show("header");
    header + &show("payload") + &format!("  token: {token}")
}

#[test]
fn authz_agrees_with_jsonwebtoken_except_where_documented_stricter() {
    let setups = setups();
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2000;
    }
    config.failure_persistence = None;
    let cases = config.cases as usize;
    let stats = RefCell::new(Stats::default());
    let result = TestRunner::new(config).run(&spec(), |spec| {
        let setup = &setups[spec.setup];
        let (token, authz, jwt, now) = verdicts(&spec, setup);
        let case = Case {
            token: &token,
            key_kid: KID,
            now,
            leeway: LEEWAY,
        };
        let mut stats = stats.borrow_mut();
        match (&authz, &jwt) {
            (Ok(()), Ok(())) => stats.both_accept += 1,
            (Err(_), Err(_)) => stats.both_refuse += 1,
            (Ok(()), Err(j)) => {
                return Err(TestCaseError::fail(format!(
                    "authz ACCEPTS what jsonwebtoken refuses ({j}), key {:?}:\n{}",
                    setup.alg,
                    readable(&token)
                )));
            }
            (Err(a), Ok(())) => match authz_is_stricter(&case) {
                Some(reason) => *stats.stricter.entry(reason).or_default() += 1,
                None => {
                    return Err(TestCaseError::fail(format!(
                        "authz refuses ({a}) what jsonwebtoken accepts, and no documented rule says \
                         authz is stricter here (key {:?}):\n{}",
                        setup.alg,
                        readable(&token)
                    )));
                }
            },
        }
        Ok(())
    });
    let stats = stats.into_inner();
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "differential: {} both accept, {} both refuse, authz stricter: {:#?}",
        stats.both_accept, stats.both_refuse, stats.stricter
    );
    // The generator must keep producing valid tokens, or the comparison says little.
    assert!(
        stats.both_accept * 10 >= cases,
        "only {} of {cases} generated tokens were valid",
        stats.both_accept
    );
}
