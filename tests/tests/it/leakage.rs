//! leakage
