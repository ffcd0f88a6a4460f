//! End-to-end and compile tests for the authz workspace live in `tests/` (integration tests) and
//! `ui/` (trybuild). The library holds only what the tests share with the fuzz targets: the
//! differential rule.

pub mod differential_rule;
