//! The permissions and roles this service knows, checked at compile time.

authz_axum::catalog! {
    /// Every permission of the model registry.
    pub struct Catalog {
        permissions: [
            "data:read",
            "data:write",
            "model:run",
            "model:deploy",
            "report:create",
            "report:read_any",
            "payment:initiate",
            "payment:approve",
            "model:create",
        ],
        roles: ["viewer", "analyst", "admin", "payments_clerk", "payments_approver"],
    }
}
