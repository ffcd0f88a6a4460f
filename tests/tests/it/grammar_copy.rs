//! `authz-macros` keeps its own copy of the permission grammar (a published package cannot
//! include a file from another package): the copy must stay byte-identical to the original.

use std::path::PathBuf;

const FIX: &str = "cp authz-core/src/grammar.rs authz-macros/src/grammar.rs";

#[test]
fn the_macros_grammar_is_a_byte_identical_copy_of_the_core_grammar() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let core = read("authz-core/src/grammar.rs");
    let macros = read("authz-macros/src/grammar.rs");
    if core != macros {
        let line = core
            .lines()
            .zip(macros.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "authz-macros/src/grammar.rs differs from authz-core/src/grammar.rs (first at {line}); \
             the core file is the original: edit it, then run `{FIX}` from the workspace root"
        );
    }
}
