//! The policy-file loader: any text, never a panic; a loaded policy round-trips through TOML.
#![no_main]
use std::sync::{Arc, OnceLock};

use authz_core::{PermissionCatalog, Policy};
use libfuzzer_sys::fuzz_target;

fn catalog() -> Arc<PermissionCatalog> {
    static C: OnceLock<Arc<PermissionCatalog>> = OnceLock::new();
    C.get_or_init(|| {
        Arc::new(
            PermissionCatalog::new([
                "data:read",
                "data:write",
                "model:run",
                "model:deploy",
                "report:create",
                "payment:initiate",
                "payment:approve",
            ])
            .unwrap(),
        )
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_toml_str(text, catalog(), None) {
        let again = Policy::from_toml_str(&policy.to_toml(), catalog(), None).expect("round trip");
        for role in policy.role_names() {
            assert_eq!(policy.role_permissions(role), again.role_permissions(role));
        }
        let _ = policy.redundant_roles();
    }
});
