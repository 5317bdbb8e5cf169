//! Master keys on disk and in the environment.

use std::fs;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt as _;

use telephony_vault::{KeyRing, SecretString, VaultError, key_file_is_private};

use super::OWNER;

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

#[test]
fn first_start_creates_a_private_key_file_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.keys");

    let (ring, created) = KeyRing::load_or_create(&path).expect("create");
    assert!(created);
    assert_eq!(ring.versions(), [1]);
    #[cfg(unix)]
    assert_eq!(
        fs::metadata(&path).expect("metadata").permissions().mode() & 0o777,
        0o600
    );
    let ciphertext = ring
        .encrypt(&SecretString::new("t"), &OWNER)
        .expect("encrypt");

    assert_eq!(key_file_is_private(&path).ok(), Some(true));

    let (again, created) = KeyRing::load_or_create(&path).expect("load");
    assert!(!created, "the second start loads the same file");
    assert_eq!(
        again
            .decrypt(&ciphertext, &OWNER)
            .expect("same key")
            .expose(),
        "t"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["vault.keys"], "no temporary file left behind");
}

#[test]
fn a_rotated_ring_saved_atomically_loads_back_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.keys");
    let (v1, _) = KeyRing::load_or_create(&path).expect("create");
    let old = v1
        .encrypt(&SecretString::new("old"), &OWNER)
        .expect("encrypt");

    let v2 = v1.with_new_active_key().expect("rotate");
    v2.save(&path).expect("save");
    #[cfg(unix)]
    assert_eq!(
        fs::metadata(&path).expect("metadata").permissions().mode() & 0o777,
        0o600
    );
    let loaded = KeyRing::from_file(&path).expect("load");
    assert_eq!(loaded.versions(), [1, 2]);
    assert_eq!(loaded.active_version(), 2);
    assert_eq!(loaded.decrypt(&old, &OWNER).expect("old").expose(), "old");

    // A staged (not active) newest key survives the round trip as staged.
    let staged = loaded.with_staged_key().expect("stage");
    staged.save(&path).expect("save");
    let reloaded = KeyRing::from_file(&path).expect("load");
    assert_eq!(
        (reloaded.versions(), reloaded.active_version()),
        (vec![1, 2, 3], 2)
    );
    let text = fs::read_to_string(&path).expect("read");
    assert!(
        text.lines().any(|l| l == "active=2"),
        "{}",
        text.lines().count()
    );
}

#[test]
fn the_environment_form_uses_the_file_syntax_on_one_line() {
    let ring = KeyRing::from_base64_keys(&format!("1:{K1}, 2:{K2}")).expect("env form");
    assert_eq!((ring.versions(), ring.active_version()), (vec![1, 2], 2));
    let ring = KeyRing::from_base64_keys(&format!("2:{K2},1:{K1},active=1")).expect("env form");
    assert_eq!(ring.active_version(), 1);
    let ring = KeyRing::from_base64_keys(&format!(
        "# comment\n\n  7:{K1}   # trailing comment\n active = 7\n"
    ))
    .expect("file form");
    assert_eq!((ring.versions(), ring.active_version()), (vec![7], 7));
}

/// Each way a key specification can be wrong, with the message the operator reads.
#[test]
fn malformed_key_specifications_are_typed_errors_without_key_material() {
    let cases = [
        String::new(),
        "# only a comment\n\n".to_owned(),
        format!("1:{K1}\n1:{K2}"),
        "1:not*base64".to_owned(),
        "1:dGVzdA==".to_owned(),
        format!("1:{K1}A"),
        K1.to_owned(),
        format!("0:{K1}"),
        format!("01:{K1}"),
        format!("-1:{K1}"),
        format!("v1:{K1}"),
        format!("99999999999:{K1}"),
        format!("1:{K1}\nactive=2"),
        format!("1:{K1}\nactive=1\nactive=1"),
        format!("1:{K1}\nactive 1"),
        format!("1:{K1}\nactive=one"),
    ];
    let messages: Vec<String> = cases
        .iter()
        .map(|spec| {
            let err = KeyRing::from_base64_keys(spec).expect_err(spec);
            let message = err.to_string();
            assert!(!message.contains("AAECAwQF"), "{message}");
            message
        })
        .collect();
    expect_test::expect![[r#"
        [
            "no master key defined",
            "no master key defined",
            "master key version 1 is defined twice",
            "master key line 1: key is not valid base64",
            "master key line 1: key is 4 bytes, an aes-256 key is 32",
            "master key line 1: key is not valid base64",
            "master key line 1: expected `<version>:<base64 key>` or `active=<version>`",
            "master key line 1: key version is not a positive integer",
            "master key line 1: key version is not a positive integer",
            "master key line 1: key version is not a positive integer",
            "master key line 1: key version is not a positive integer",
            "master key line 1: key version is not a positive integer",
            "active master key version 2 is not defined",
            "master key line 3: a second `active=` line",
            "master key line 2: expected `active=<version>`",
            "master key line 2: active version is not a positive integer",
        ]
    "#]]
    .assert_debug_eq(&messages);
}

#[test]
fn a_missing_or_unreadable_key_file_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.keys");
    assert!(matches!(
        KeyRing::from_file(&missing),
        Err(VaultError::KeyFileMissing { path }) if path == missing
    ));
    // A directory where the file should be cannot be read.
    assert!(matches!(
        KeyRing::from_file(dir.path()),
        Err(VaultError::Io { .. })
    ));
    // Creating inside a directory that does not exist fails without creating anything.
    let nowhere = dir.path().join("no-such-dir").join("vault.keys");
    assert!(matches!(
        KeyRing::load_or_create(&nowhere),
        Err(VaultError::Io { .. })
    ));
    let empty = dir.path().join("empty.keys");
    fs::write(&empty, "").expect("write");
    assert!(matches!(
        KeyRing::from_file(&empty),
        Err(VaultError::NoKeys)
    ));
    // An existing but malformed file is never replaced by load_or_create.
    let bad = dir.path().join("bad.keys");
    fs::write(&bad, "1:short").expect("write");
    assert!(matches!(
        KeyRing::load_or_create(&bad),
        Err(VaultError::KeyNotBase64 { line: 1 } | VaultError::WrongKeyLength { line: 1, .. })
    ));
    assert_eq!(fs::read_to_string(&bad).expect("read"), "1:short");
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_reported_and_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.keys");
    fs::write(&path, format!("1:{K1}\n")).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(key_file_is_private(&path).ok(), Some(false));
    assert_eq!(KeyRing::from_file(&path).expect("loads").versions(), [1]);
    // Saving a rotation over it tightens the mode.
    KeyRing::from_file(&path)
        .and_then(|ring| ring.with_new_active_key())
        .and_then(|ring| ring.save(&path))
        .expect("rotate and save");
    assert_eq!(key_file_is_private(&path).ok(), Some(true));
    assert!(matches!(
        key_file_is_private(&dir.path().join("absent")),
        Err(VaultError::KeyFileMissing { .. })
    ));
}
