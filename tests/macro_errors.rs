//! Bad model definitions fail to compile with a message at the offending span
//! (`tests/ui/*.stderr` hold the expected messages; refresh them with `TRYBUILD=overwrite`).

#[test]
fn bad_models_are_compile_errors_with_clear_messages() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
