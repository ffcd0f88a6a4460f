//! End-to-end tests of the authz workspace: one binary, one module per concern.

// Helpers are `pub` for the modules of this binary; nothing here is a public API.
#![allow(unreachable_pub)]

mod apikeys;
mod attacks;
mod browser;
mod checklist;
mod common;
mod configured;
mod differential;
mod dpop;
mod e2e;
mod grammar_copy;
mod guards;
mod hostile;
mod identity;
mod interop;
mod jwks;
mod key_cache;
mod leakage;
mod observe;
mod oidc;
mod openapi;
mod policy;
mod resources;
mod revocation;
mod routing;
mod serving;
mod setup;
mod tenancy;
mod testkit;
mod token_hardening;
mod token_service;
mod token_source;
mod token_store;
mod vectors;
