//! The emulator's command line: it starts from a seed, says where it listens, and refuses a
//! bad seed with a clear message. (Also makes `cargo test` build the binary the gateway's
//! end-to-end test runs.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_carrier-emulator")
}

#[test]
fn starts_from_the_demo_seed_and_prints_its_address() {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/telephony-emulator/seeds/demo.json"
    );
    let mut child = Command::new(exe())
        .args(["--seed", seed, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("carrier emulator listening on http://127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn a_malformed_seed_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, r#"{"twilio": {"acounts": []}}"#).expect("write");
    let output = Command::new(exe())
        .args([
            "--seed",
            seed.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("seed"), "{stderr}");
}
