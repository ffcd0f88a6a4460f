//! Helpers for the peer benchmarks (see benches/ and src/bin/).
