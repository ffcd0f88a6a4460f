//! End-to-end and compile tests for the authz workspace live in `tests/` (integration tests) and
//! `ui/` (trybuild). The library holds only what is shared with crates outside this one: the
//! differential rule (with the fuzz target) and the signed benchmark tokens (with
//! `authz-core`'s benches and `bench-peers`).

pub mod differential_rule;
pub mod signed_tokens;
