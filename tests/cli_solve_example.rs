//! `mpc solve` without a problem solves the embedded example (the README's main command), and
//! `--print-example` gives a document that `mpc solve --problem` accepts.

mod common;

use common::mpc;

#[test]
fn embedded_example_solves_and_round_trips() {
    let out = mpc().arg("solve").output().expect("run mpc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sol: serde_json::Value = serde_json::from_slice(&out.stdout).expect("solution JSON");
    assert_eq!(sol["format"], "mpc-solution/1");
    assert_eq!(sol["converged"], serde_json::json!([true, true, true, true]));
    assert_eq!(sol["grad_x_init"].as_array().map(Vec::len), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedded example"));

    let ex = mpc().args(["solve", "--print-example"]).output().expect("run mpc");
    assert!(ex.status.success());
    let dir = std::env::temp_dir().join(format!("mpc-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("example.json");
    std::fs::write(&p, &ex.stdout).unwrap();
    let again = mpc().args(["solve", "--problem"]).arg(&p).output().expect("run mpc");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let sol2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    // Same numbers through the file as through the embedded path.
    assert_eq!(sol["cost"], sol2["cost"]);
    assert_eq!(sol["grad_c"], sol2["grad_c"]);
    std::fs::remove_dir_all(&dir).ok();
}
