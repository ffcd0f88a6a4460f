//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

/// The outside test vectors: `$AUTHZ_VECTORS_DIR`, or `../shared/vectors` beside the checkout.
/// `None` (and a line saying so) when they are not there.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHZ_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: outside test vectors not found at {} (set AUTHZ_VECTORS_DIR); CI always has them",
            dir.display()
        );
        None
    }
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
