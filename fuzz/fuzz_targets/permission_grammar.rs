//! The permission grammar: any text, never a panic; accepted permissions print back unchanged
//! and follow the documented character set.
#![no_main]
use authz_core::{Grant, Permission};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Permission::parse(text) {
        Ok(p) => {
            assert_eq!(p.to_string(), text);
            assert_eq!(format!("{}:{}", p.resource(), p.action()), text);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b))
            );
        }
        Err(e) => {
            assert!(e.offset() <= text.len());
            let _ = e.to_string();
        }
    }
    if let Ok(g) = Grant::parse(text) {
        assert_eq!(g.to_string(), text);
    }
});
