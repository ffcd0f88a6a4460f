//! The API-key parser: any text, never a panic; only well-formed, correctly checksummed keys
//! parse, and a parsed key's id is part of it.
#![no_main]
use authz_core::apikey::ApiKeyFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let format = ApiKeyFormat::new("mr").unwrap();
    if let Ok(parsed) = format.parse(text) {
        assert!(format.claims(text));
        assert!(text.contains(parsed.id()));
        assert_eq!(parsed.id().len(), 16);
    }
});
