// A type that is merely *named* `PolicyChecked` cannot take the decision over: the guard would
// leave it to an extractor that never decides.
use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:deploy"] }
}

pub struct PolicyChecked(pub String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for PolicyChecked {
    type Rejection = std::convert::Infallible;
    async fn from_request(_: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PolicyChecked(String::new()))
    }
}

#[require_permission("model:deploy", policy = "deploy")]
async fn handler(_body: PolicyChecked) {}

fn main() {}
