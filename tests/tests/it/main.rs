//! End-to-end tests of the authz workspace: one binary, one module per concern.

mod common;
mod e2e;
mod guards;
mod jwks;
mod leakage;
mod vectors;
