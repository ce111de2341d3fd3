//! Machine load from `/proc`: load averages, busy cores, CPU ticks, and waiting for an idle machine.

use std::time::{Duration, Instant};

/// 1-, 5-, 15-minute load averages.
pub(super) fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// Cores kept busy by the whole machine over `sample` (from `/proc/stat`, while this process
/// sleeps, so it counts other processes).
pub(super) fn busy_cores(sample: Duration) -> Option<f64> {
    fn read() -> Option<(f64, f64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<f64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0.0);
        Some((v.iter().sum(), idle))
    }
    let (t0, i0) = read()?;
    std::thread::sleep(sample);
    let (t1, i1) = read()?;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = t1 - t0;
    Some(if total > 0.0 { ncpu * (1.0 - (i1 - i0) / total) } else { 0.0 })
}

/// CPU time so far, in clock ticks: (whole machine busy, whole machine total, this process).
pub(super) fn cpu_ticks() -> Option<(f64, f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0.0);
    let total: f64 = v.iter().sum();
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    let own = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some((total - idle, total, own))
}

/// Wait at most `max_s` until fewer than `threshold` cores are busy; (busy cores, waited s).
pub(super) fn wait_idle(max_s: f64, threshold: f64) -> (Option<f64>, f64) {
    let t0 = Instant::now();
    loop {
        let busy = busy_cores(Duration::from_secs(1));
        let waited = t0.elapsed().as_secs_f64();
        match busy {
            Some(b) if b >= threshold && waited < max_s => std::thread::sleep(Duration::from_secs(2)),
            _ => return (busy, waited),
        }
    }
}
