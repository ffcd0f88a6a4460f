//! End-to-end and compile tests for the authz workspace live in `tests/` (integration tests) and
//! `ui/` (trybuild). This library is empty on purpose.
