//! `mpc solve --verbose`: the iteration trace of every problem (iteration, cost, |du|, step
//! size, regularisation, KKT residual, outcome) and its stop line, compared with golden logs
//! in `tests/golden/solve_verbose/` (`MPC_UPDATE_GOLDEN=1` rewrites them after an intended
//! change), and the solution written with `--verbose` equal to the bit to the one without.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `mpc solve --problem problem --out <tmp> [--verbose]`: (stderr, solution document).
fn solve(problem: &Path, verbose: bool, tag: &str) -> (String, String) {
    let dir = mpc_runtime::private_fs::private_temp_dir("mpc-verbose-").unwrap();
    let out = dir.path().join(format!("{tag}.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc"));
    cmd.args(["solve", "--problem"]).arg(problem).arg("--out").arg(&out);
    if verbose {
        cmd.arg("--verbose");
    }
    let st = cmd.output().unwrap();
    let err = String::from_utf8(st.stderr).unwrap();
    assert!(st.status.success(), "{err}");
    (err, std::fs::read_to_string(&out).unwrap())
}

#[test]
fn verbose_traces_match_the_golden_logs_and_change_nothing() {
    let cases = [
        ("pendulum_exact", root().join("tests/fixtures/pendulum_exact.problem.json")),
        ("cartpole_ddp_tol", root().join("tests/golden/solve_verbose/cartpole_ddp_tol.problem.json")),
    ];
    let mut failures = Vec::new();
    for (name, problem) in cases {
        let (log, with) = solve(&problem, true, "verbose");
        let (quiet, without) = solve(&problem, false, "quiet");
        assert_eq!(with, without, "{name}: --verbose changed the solution");
        assert!(quiet.is_empty(), "{name}: stderr without --verbose: {quiet}");
        // Every problem has a header, a table and a stop line.
        let problems = log.matches("mpc solve: problem ").count();
        assert!(problems >= 2 && log.matches("  stop: ").count() == problems, "{name}:\n{log}");
        let golden = root().join(format!("tests/golden/solve_verbose/{name}.log"));
        if std::env::var_os("MPC_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &log).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e} (MPC_UPDATE_GOLDEN=1 writes it)", golden.display()));
        if log != want {
            let first = log.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0);
            failures.push(format!(
                "{name}: differs from {} at line {}:\n  got:  {}\n  want: {}",
                golden.display(),
                first + 1,
                log.lines().nth(first).unwrap_or(""),
                want.lines().nth(first).unwrap_or("")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The columns mean what they say: the pendulum's iterations count up from 1, the stop line's
/// iteration count is the last traced iteration, and a DDP solve with a KKT tolerance shows
/// Newton steps and a residual at the end.
#[test]
fn trace_rows_agree_with_the_solution() {
    let (log, _) = solve(&root().join("tests/golden/solve_verbose/cartpole_ddp_tol.problem.json"), true, "ddp");
    for block in log.split("mpc solve: problem ").skip(1) {
        let rows: Vec<&str> = block.lines().filter(|l| l.ends_with("newton") || l.ends_with("step") || l.ends_with("reject")).collect();
        assert!(!rows.is_empty(), "{block}");
        assert!(rows.iter().all(|r| r.ends_with("newton")), "DDP rows: {block}");
        let last_iter: usize = rows.last().unwrap().split_whitespace().next().unwrap().parse().unwrap();
        let stop = block.lines().find(|l| l.starts_with("  stop: ")).unwrap();
        assert!(stop.contains(&format!("after {last_iter} iterations")), "{stop} vs {last_iter}");
        assert!(stop.contains("tolerance (converged)"), "{stop}");
    }
}
