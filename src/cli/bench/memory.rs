//! This machine's memory limit: the streaming read and write bandwidth of main memory, on one
//! core and on the bench's thread pool, and the bytes a case's solve and backward pass must move
//! at the least, so that a case whose data exceed the caches can be read against the time its
//! memory traffic alone would take (the "memory floor").
//!
//! Each thread streams its own buffer of 128 MiB ([`buffer_bytes`]: larger than the last-level
//! caches of the machines this runs on, so the passes go to memory; its pages are written before
//! any timing, by the thread that streams it; in huge-page-advised memory, as the problem data
//! and the solver's outputs: `mpc_runtime::pages`). Read: an OR over every 64-bit word, in independent vector chains. Write: ordinary
//! stores and, on x86-64, non-temporal ones; the faster of the two is the write limit (the
//! solver streams a large `dL/dC`, and which store kind is faster differs between hosts). The
//! best of several passes is kept (a limit, not a typical rate).

use rayon::ThreadPool;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

/// Bytes each thread streams per pass: 128 MiB, less where many threads would hold more than
/// [`TOTAL_MAX_BYTES`] together, never less than 32 MiB.
fn buffer_bytes(threads: usize) -> usize {
    (128usize << 20).min(TOTAL_MAX_BYTES / threads.max(1)).max(32 << 20)
}

/// Memory all threads' buffers may take together (1 GiB).
const TOTAL_MAX_BYTES: usize = 1 << 30;

/// Passes per measurement (best kept).
const REPS: usize = 5;

/// The measured memory limit, GB/s (10⁹ bytes per second).
#[derive(Clone, Copy, Debug)]
pub(super) struct Bandwidth {
    /// Read bandwidth of one thread.
    pub(super) read_one: f64,
    /// Write bandwidth of one thread (the faster store kind).
    pub(super) write_one: f64,
    /// Read bandwidth of all threads of the pool at once.
    pub(super) read_all: f64,
    /// Write bandwidth of all threads at once (the faster store kind).
    pub(super) write_all: f64,
    /// Which store kind was faster on all threads: "ordinary" or "non-temporal".
    pub(super) write_kind: &'static str,
    /// Write bandwidth of each store kind, (ordinary, non-temporal): on one thread, on all.
    pub(super) write_kinds: [(f64, f64); 2],
    /// Threads of the pool.
    pub(super) threads: usize,
    /// Bytes each thread streamed per pass.
    pub(super) buffer: usize,
}

/// Bytes one problem's forward solve and backward pass read and write at the least: every input
/// once and every output once (`f64` entries; the per-control bounds and the statistics are
/// left out, a few dozen bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Traffic {
    pub(super) forward_read: f64,
    pub(super) forward_write: f64,
    pub(super) backward_read: f64,
    pub(super) backward_write: f64,
}

impl Traffic {
    /// One problem of `nx` states, `nu` controls and horizon `t`: the forward solve reads `C`
    /// (T·n²), `c` (T·n), `x_init` and `u_init` and writes `x`, `u`; the backward pass reads `C`,
    /// `x`, `u` and the upstream gradients of `x` and `u`, and writes `dL/dC`, `dL/dc` and
    /// `dL/dx_init`.
    pub(super) fn per_problem(nx: usize, nu: usize, t: usize) -> Traffic {
        let (n, f) = ((nx + nu) as f64, 8.0);
        let (nx, nu, t) = (nx as f64, nu as f64, t as f64);
        let xu = t * (nx + nu);
        Traffic {
            forward_read: f * (t * n * n + t * n + nx + t * nu),
            forward_write: f * xu,
            backward_read: f * (t * n * n + 2.0 * xu),
            backward_write: f * (t * n * n + t * n + nx),
        }
    }
}

impl Bandwidth {
    /// The limits for a case run on `threads` threads: (read, write) GB/s.
    fn limit(&self, threads: usize) -> (f64, f64) {
        if threads <= 1 { (self.read_one, self.write_one) } else { (self.read_all, self.write_all) }
    }

    /// Milliseconds that moving `read` and `write` bytes takes at the limits of `threads`
    /// threads (reads and writes share the memory bus: their times add).
    pub(super) fn floor_ms(&self, read: f64, write: f64, threads: usize) -> f64 {
        let (r, w) = self.limit(threads);
        (read / r + write / w) * 1e-9 * 1e3
    }

    /// One line for the report.
    pub(super) fn describe(&self) -> String {
        format!(
            "memory limit (streaming {} MiB per thread): read {:.1} GB/s, write {:.1} GB/s on one core; read {:.1} GB/s, write {:.1} GB/s ({} stores) on {} threads",
            self.buffer >> 20,
            self.read_one,
            self.write_one,
            self.read_all,
            self.write_all,
            self.write_kind,
            self.threads
        )
    }
}

/// The OR of every word's bits (four independent vector chains after vectorisation).
fn read_pass(buf: &[u64]) -> u64 {
    let mut acc = [0u64; 16];
    let mut chunks = buf.chunks_exact(16);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a |= v;
        }
    }
    chunks.remainder().iter().fold(acc.iter().fold(0, |a, b| a | b), |a, b| a | b)
}

/// Fill `buf` with ordinary stores: word `i` = `v ^ (start + i)`.
fn write_pass(buf: &mut [u64], v: u64, start: usize) {
    for (i, x) in buf.iter_mut().enumerate() {
        *x = v ^ (start + i) as u64;
    }
}

/// [`write_pass`] from 0 with non-temporal stores where the CPU has them (x86-64), else
/// ordinary ones.
fn stream_pass(buf: &mut [u64], v: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_set_epi64x, _mm_sfence, _mm_stream_si128};
        // A `Vec<u64>` of this size is 16-byte aligned on x86-64 (the allocator's minimum for
        // large blocks); an unaligned start gets ordinary stores up to the boundary.
        let head = (buf.as_ptr() as usize % 16 / 8).min(buf.len());
        write_pass(&mut buf[..head], v, 0);
        let body = &mut buf[head..];
        let pairs = body.len() / 2;
        for i in 0..pairs {
            let j = (head + 2 * i) as u64;
            // SAFETY: SSE2 is part of x86-64; `body[2i..2i + 2]` is in bounds and 16-byte aligned.
            unsafe {
                _mm_stream_si128(body.as_mut_ptr().add(2 * i).cast(), _mm_set_epi64x((v ^ (j + 1)) as i64, (v ^ j) as i64));
            }
        }
        let tail = 2 * pairs;
        write_pass(&mut body[tail..], v, head + tail);
        // SAFETY: SSE is part of x86-64.
        unsafe { _mm_sfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    write_pass(buf, v, 0);
}

/// Which pass a measurement runs.
#[derive(Clone, Copy)]
enum Pass {
    Read,
    Write,
    Stream,
}

/// GB/s of `threads` threads running `pass` at once over their own buffers (best of [`REPS`]).
fn rate(pool: &ThreadPool, bufs: &[Mutex<Vec<u64>>], threads: usize, pass: Pass) -> f64 {
    let run = |i: usize| {
        let mut b = bufs[i].lock().unwrap_or_else(|e| e.into_inner());
        match pass {
            Pass::Read => {
                black_box(read_pass(&b));
            }
            Pass::Write => write_pass(&mut b, black_box(7), 0),
            Pass::Stream => stream_pass(&mut b, black_box(7)),
        }
    };
    let bytes = (8 * bufs[0].lock().unwrap_or_else(|e| e.into_inner()).len() * threads) as f64;
    let mut best = 0.0f64;
    for _ in 0..REPS {
        let t = Instant::now();
        if threads == 1 {
            run(0);
        } else {
            pool.broadcast(|ctx| run(ctx.index()));
        }
        best = best.max(bytes / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Measure the read and write bandwidth on one core and on all of the pool's threads (~0.5 s on
/// two threads; [`buffer_bytes`] per thread of memory while it runs).
pub(super) fn measure(pool: &ThreadPool) -> Bandwidth {
    let threads = pool.current_num_threads().max(1);
    let buffer = buffer_bytes(threads);
    let words = buffer / 8;
    // Each thread's buffer, its pages touched (by that thread: first-touch placement) before
    // any timing.
    let bufs: Vec<Mutex<Vec<u64>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    // In huge-page-advised memory, as the bench's problem data and the solver's outputs.
    let alloc = |i: usize| {
        let mut b = bufs[i].lock().unwrap_or_else(|e| e.into_inner());
        mpc_runtime::pages::resize(&mut b, words, 0);
        for (k, x) in b.iter_mut().enumerate() {
            *x = (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    };
    if threads == 1 {
        alloc(0);
    } else {
        pool.broadcast(|ctx| alloc(ctx.index()));
    }
    let writes = |n: usize| (rate(pool, &bufs, n, Pass::Write), rate(pool, &bufs, n, Pass::Stream));
    let read_one = rate(pool, &bufs, 1, Pass::Read);
    let kinds_one = writes(1);
    let (read_all, kinds_all) = if threads > 1 { (rate(pool, &bufs, threads, Pass::Read), writes(threads)) } else { (read_one, kinds_one) };
    let write_kind = if kinds_all.1 > kinds_all.0 { "non-temporal" } else { "ordinary" };
    Bandwidth {
        read_one,
        write_one: kinds_one.0.max(kinds_one.1),
        read_all,
        write_all: kinds_all.0.max(kinds_all.1),
        write_kind,
        write_kinds: [kinds_one, kinds_all],
        threads,
        buffer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_read_and_write_every_word() {
        let mut b = vec![0u64; 37];
        b[36] = 1 << 40;
        b[3] = 5;
        assert_eq!(read_pass(&b), (1 << 40) | 5);
        for v in [3u64, 1 << 50] {
            let mut w = vec![0u64; 41];
            write_pass(&mut w, v, 0);
            assert!(w.iter().enumerate().all(|(i, &x)| x == v ^ i as u64));
            // Both alignments of the start and both parities of the length: the ordinary head
            // and tail around the streamed pairs.
            for (from, to) in [(0, 41), (1, 41), (0, 40), (1, 40)] {
                let mut s = vec![0u64; 41];
                stream_pass(&mut s[from..to], v);
                assert_eq!(&s[from..to], &w[..to - from], "{from}..{to}");
                assert!(s[..from].iter().chain(&s[to..]).all(|&x| x == 0));
            }
        }
    }

    #[test]
    fn traffic_counts_every_array_once() {
        // n = 3: C 2·9, c 2·3, x_init 2, u_init 2·1; x 2·2, u 2·1.
        let t = Traffic::per_problem(2, 1, 2);
        assert_eq!(t.forward_read, 8.0 * (18.0 + 6.0 + 2.0 + 2.0));
        assert_eq!(t.forward_write, 8.0 * 6.0);
        assert_eq!(t.backward_read, 8.0 * (18.0 + 12.0));
        assert_eq!(t.backward_write, 8.0 * (18.0 + 6.0 + 2.0));
    }

    #[test]
    fn buffers_stay_within_the_memory_cap() {
        assert_eq!(buffer_bytes(2), 128 << 20);
        assert_eq!(buffer_bytes(16), 64 << 20);
        assert_eq!(buffer_bytes(256), 32 << 20);
    }

    #[test]
    fn bandwidth_is_positive_and_finite() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let b = measure(&pool);
        for v in [b.read_one, b.write_one, b.read_all, b.write_all] {
            assert!(v.is_finite() && v > 0.05, "{b:?}");
        }
        // 1 GB read and 1 GB written at 1 GB/s each: 2 s.
        let slow = Bandwidth { read_one: 1.0, write_one: 1.0, read_all: 2.0, write_all: 2.0, write_kind: "ordinary", write_kinds: [(1.0, 0.5); 2], threads: 2, buffer: 1 };
        assert!((slow.floor_ms(1e9, 1e9, 1) - 2000.0).abs() < 1e-9);
        assert!((slow.floor_ms(1e9, 1e9, 2) - 1000.0).abs() < 1e-9);
    }
}
