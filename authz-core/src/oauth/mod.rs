//! The state model of an OAuth 2.0 authorization server (RFC 6749): clients, users, authorization
//! codes, refresh-token families, issued access tokens, login sessions and signing keys — and the
//! [`TokenStore`] trait every store implements ([`MemoryTokenStore`] here; SQLite and PostgreSQL
//! in `authz-axum`, feature `token-service` + `sqlx`). The HTTP endpoints live in
//! `authz_axum::oauth`.
//!
//! Secrets are never stored: authorization codes, refresh tokens, client secrets and session ids
//! are 256-bit values from the OS CSPRNG, kept as their SHA-256 ([`KeyHash`]); passwords as an
//! Argon2id PHC string. Every time is whole seconds since the Unix epoch.

mod memory;
mod model;
pub mod pkce;
mod store;

pub use crate::apikey::KeyHash;
pub use memory::MemoryTokenStore;
pub use model::{
    AccessTokenRecord, AuthorizationCode, Client, ClientSecret, ClientType, GrantType, LoginSession,
    RefreshToken, SigningKeyRecord, TokenFamily, User, new_secret,
};
pub use store::{CodeRedemption, RefreshRedemption, RefreshRotation, RotationDecision, TokenStore};
