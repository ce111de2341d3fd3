//! Large buffers backed by transparent huge pages, where the kernel allows them.
//!
//! A 20 MB `dL/dC` or cost-Hessian array in 4 KiB pages is 5000 pages: every call that touches
//! it walks past the TLB, the hardware prefetchers stop at each page's end, and a new buffer
//! takes 5000 page faults. With `madvise(MADV_HUGEPAGE)` on Linux (the setting most
//! distributions ship is `madvise`: only advised memory gets huge pages) the same array is ten
//! 2 MiB pages. numpy advises its arrays of 4 MiB and more the same way; this module does it for
//! the buffers the library allocates: the solver's outputs, and the Python package's copies of
//! its inputs. Measured on a 2-core Zen 4 (`bench/results/cpu-2026-12-05-amd-late.md`):
//! the B = 256, T = 50 backward pass 7.05–7.23 → 6.51–6.67 ms on one thread with its input
//! and output advised. Elsewhere, and below [`ADVISE_MIN_BYTES`], plain `Vec`s.

/// Buffers from this size on are advised (numpy's threshold).
pub const ADVISE_MIN_BYTES: usize = 4 << 20;

/// `v.resize(len, value)`; a buffer that must grow to at least [`ADVISE_MIN_BYTES`] is moved to
/// a new allocation advised for huge pages before any of its new pages is touched (its
/// elements are kept).
pub fn resize<T: Clone>(v: &mut Vec<T>, len: usize, value: T) {
    if len > v.capacity() && len * std::mem::size_of::<T>() >= ADVISE_MIN_BYTES {
        let mut fresh = Vec::with_capacity(len);
        advise(&mut fresh);
        fresh.extend_from_slice(v);
        *v = fresh;
    }
    v.resize(len, value);
}

/// A copy of `src`, in huge-page-advised memory where it is at least [`ADVISE_MIN_BYTES`].
pub fn copy_of<T: Clone>(src: &[T]) -> Vec<T> {
    let mut v = Vec::with_capacity(src.len());
    if std::mem::size_of_val(src) >= ADVISE_MIN_BYTES {
        advise(&mut v);
    }
    v.extend_from_slice(src);
    v
}

/// Ask the kernel for huge pages over the whole pages of `v`'s allocation (its capacity).
/// Advice only: contents and behaviour are unchanged, and a refusal is ignored.
fn advise<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let (p, bytes) = (v.as_mut_ptr() as usize, v.capacity() * std::mem::size_of::<T>());
        let (start, end) = ((p + PAGE - 1) & !(PAGE - 1), (p + bytes) & !(PAGE - 1));
        if end > start {
            // SAFETY: [start, end) lies within `v`'s allocation, which this function borrows
            // mutably; MADV_HUGEPAGE changes how pages are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small and large, growing and shrinking: the elements are those of `Vec::resize`, and a
    /// large copy equals its source.
    #[test]
    fn resize_and_copy_keep_the_elements() {
        let big = ADVISE_MIN_BYTES / 8 + 3;
        let mut v = vec![1.5f64; 10];
        resize(&mut v, big, 2.0);
        assert_eq!(v.len(), big);
        assert!(v[..10].iter().all(|&x| x == 1.5) && v[10..].iter().all(|&x| x == 2.0));
        resize(&mut v, 5, 0.0);
        assert_eq!(v, vec![1.5; 5]);
        resize(&mut v, big, 7.0);
        assert!(v[..5].iter().all(|&x| x == 1.5) && v[5..].iter().all(|&x| x == 7.0));
        let src: Vec<f64> = (0..big).map(|i| i as f64).collect();
        assert_eq!(copy_of(&src), src);
        assert_eq!(copy_of(&src[..7]), &src[..7]);
    }

    /// On Linux with transparent huge pages built in, an advised 16 MiB buffer's mapping carries
    /// the kernel's huge-page advice flag (`hg` in `VmFlags`: whether huge pages then back it
    /// depends on the mode and on free memory, the advice itself does not).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_buffer_is_advised() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            return; // a kernel without transparent huge pages refuses the advice
        }
        let mut v: Vec<f64> = Vec::new();
        resize(&mut v, (16 << 20) / 8, 1.0);
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
        // The mapping that holds the buffer, and its VmFlags line.
        let addr = v.as_ptr() as usize + (8 << 20);
        let mut inside = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = a <= addr && addr < b;
                continue;
            }
            if inside && let Some(rest) = line.strip_prefix("VmFlags:") {
                flags = Some(rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
                break;
            }
        }
        let flags = flags.expect("the buffer's mapping in /proc/self/smaps");
        assert!(flags.iter().any(|f| f == "hg"), "no huge-page advice on the buffer: {flags:?}");
        assert!(v.iter().all(|&x| x == 1.0));
    }
}
