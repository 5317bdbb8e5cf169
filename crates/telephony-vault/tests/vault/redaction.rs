//! Secrets and keys never show through formatting.

use telephony_vault::{KeyRing, REDACTED, SecretString};

#[derive(Debug)]
#[allow(dead_code)] // The fields exist to be printed by the derived Debug.
struct TwilioCredentials {
    account_sid: String,
    auth_token: SecretString,
}

#[test]
fn a_secret_inside_a_struct_prints_redacted_in_every_format() {
    let token = "f00dfeedf00dfeedf00dfeedf00dfeed";
    let creds = TwilioCredentials {
        account_sid: "AC123".to_owned(),
        auth_token: SecretString::new(token),
    };
    let renderings = [
        format!("{creds:?}"),
        format!("{creds:#?}"),
        format!("{}", creds.auth_token),
        format!("{:?}", creds.auth_token),
        format!("{:>40}", creds.auth_token),
        creds.auth_token.to_string(),
        format!("{:?}", Some(&creds.auth_token)),
        format!("{:?}", vec![creds.auth_token.clone()]),
    ];
    for rendering in &renderings {
        assert!(!rendering.contains(token), "{rendering}");
        assert!(!rendering.contains("f00d"), "{rendering}");
        assert!(rendering.contains(REDACTED), "{rendering}");
    }
    expect_test::expect![[r#"TwilioCredentials { account_sid: "AC123", auth_token: [REDACTED] }"#]]
        .assert_eq(&renderings[0]);
}

#[test]
fn a_key_ring_prints_its_versions_and_never_its_keys() {
    let spec = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
                2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\nactive=1";
    let ring = KeyRing::from_base64_keys(spec).expect("spec");
    let debug = format!("{ring:?} {ring:#?}");
    for key in [
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "ICEiIyQlJicoKSorLC0uLzAx",
    ] {
        assert!(!debug.contains(key));
    }
    expect_test::expect!["KeyRing { versions: [1, 2], active: 1, .. }"]
        .assert_eq(&format!("{ring:?}"));
}

#[test]
fn secrets_compare_by_content() {
    let a = SecretString::new("token-a");
    assert!(a.ct_eq(&SecretString::from("token-a")));
    assert!(!a.ct_eq(&SecretString::from("token-b")));
    assert!(!a.ct_eq(&SecretString::from("token-a ")));
    assert!(!a.ct_eq(&SecretString::default()));
    assert!(SecretString::default().is_empty());
    assert!(telephony_vault::constant_time_eq(b"", b""));
    assert!(!telephony_vault::constant_time_eq(b"a", b""));
}
