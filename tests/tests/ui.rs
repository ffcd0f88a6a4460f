//! Compile tests: every `#[require_*]` / `catalog!` misuse is a compile error spanned on the
//! offending token, with a message a user can act on (`ui/fail/*.stderr`), and every supported
//! form compiles (`ui/pass`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
