//! Bounded disk use of `mpc train` (issue 17): with `log.keep_last = 3` a run holds at most 3
//! regular checkpoints plus `best` at any time, also after SIGKILL; the resumed run loses at most
//! one checkpoint interval and `train.csv` has every update exactly once.

mod common;

use common::mpc;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const EVERY: u64 = 256; // steps per update (16 envs × 16 steps) = one checkpoint per update

fn args(out: &Path, total: u64) -> Vec<String> {
    let mut a: Vec<String> = vec!["train".into(), "--no-progress".into(), "--out".into(), out.display().to_string()];
    for s in [
        "policy=mlp".to_string(),
        "track=straight".into(),
        "n_envs=16".into(),
        "env.max_steps=100".into(),
        "ppo.n_steps=16".into(),
        "ppo.batch_size=256".into(),
        "ppo.n_epochs=2".into(),
        "net.hidden=32".into(),
        format!("log.checkpoint_every={EVERY}"),
        "log.keep_last=3".into(),
        "log.eval_every=768".into(),
        "log.eval_episodes=1".into(),
        format!("ppo.total_steps={total}"),
    ] {
        a.push("--set".into());
        a.push(s);
    }
    a
}

/// (regular checkpoints, whether `best` exists, leftover temporary entries).
fn census(root: &Path) -> (Vec<String>, bool, usize) {
    let Ok(rd) = std::fs::read_dir(root) else { return (Vec::new(), false, 0) };
    let mut regular = Vec::new();
    let (mut best, mut tmp) = (false, 0);
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("step_") {
            regular.push(n);
        } else if n == "best" {
            best = true;
        } else if n.contains(".tmp-") {
            tmp += 1;
        }
    }
    regular.sort();
    (regular, best, tmp)
}

fn csv_steps(out: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(out.join("train.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn keep_last_bounds_checkpoints_across_sigkill_and_resume() {
    let dir = mpc_runtime::private_fs::private_temp_dir("mpc-retention-test-").unwrap();
    let out = dir.path().join("run");
    let root = out.join("checkpoints");
    let mut child = mpc().args(args(&out, 1_000_000)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let mut max_regular = 0;
    loop {
        let (regular, _, _) = census(&root);
        max_regular = max_regular.max(regular.len());
        if csv_steps(&out).len() >= 8 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "the run made no progress in 10 minutes");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mpc train exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let rows = csv_steps(&out);
    let (regular, best, _) = census(&root);
    eprintln!("killed after {} updates; checkpoints {regular:?}, best {best}; most seen at once: {max_regular}", rows.len());
    assert!(max_regular <= 3, "at most keep_last = 3 regular checkpoints at any time (saw {max_regular})");
    assert!(regular.len() <= 3 && best, "after SIGKILL: {regular:?}, best {best}");
    // Resume, extending the run by four updates: it starts from `latest`, at most one interval
    // behind the last logged update.
    let logged = rows.last().unwrap().1;
    let resumed_from = acmpc::checkpoint::load(&root).unwrap().state.steps;
    assert!(logged - resumed_from <= EVERY, "logged {logged} steps, checkpoint at {resumed_from}");
    let total = resumed_from + 4 * EVERY;
    let st = mpc().args(args(&out, total)).arg("--resume").stdout(Stdio::null()).output().unwrap();
    assert!(st.status.success(), "resume failed: {}", String::from_utf8_lossy(&st.stderr));
    let rows = csv_steps(&out);
    let updates: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(updates, (1..=updates.len() as u64).collect::<Vec<_>>(), "every update once, in order");
    assert_eq!(rows.last().unwrap().1, total);
    let (regular, best, tmp) = census(&root);
    assert_eq!(regular.len(), 3, "{regular:?}");
    assert!(best && tmp == 0, "best {best}, leftover temporary entries {tmp}");
    assert_eq!(acmpc::checkpoint::load(&root).unwrap().state.steps, total);
}
