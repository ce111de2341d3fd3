//! The GPU as a [`KernelDevice`]: `cudarc` buffers, copies and the (`unsafe`) launch of an entry point.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::{CudaError, drv};
use crate::args::{Arg, Buf};
use crate::orchestrate::{KernelDevice, KernelReal};

/// `f32` / `f64` as exchanged with the device.
pub(super) trait DeviceReal: KernelReal + DeviceRepr + ValidAsZeroBits + Unpin {}
impl<R: KernelReal + DeviceRepr + ValidAsZeroBits + Unpin> DeviceReal for R {}

/// Device memory by buffer name, allocated for the solver's capacity and grown only if a call
/// needs more; `null` marks buffers bound as null pointers for the next launches.
pub(super) struct GpuBuffers<R> {
    reals: HashMap<Buf, CudaSlice<R>>,
    ints: HashMap<Buf, CudaSlice<i32>>,
    null: HashSet<Buf>,
}

impl<R> Default for GpuBuffers<R> {
    fn default() -> Self {
        GpuBuffers { reals: HashMap::new(), ints: HashMap::new(), null: HashSet::new() }
    }
}

pub(super) enum AnyBuffers {
    F32(GpuBuffers<f32>),
    F64(GpuBuffers<f64>),
}

/// The GPU as a [`KernelDevice`]: the stream, the loaded entry points and the buffers.
pub(super) struct GpuDevice<'a, R> {
    pub(super) stream: &'a Arc<CudaStream>,
    pub(super) funcs: &'a HashMap<String, CudaFunction>,
    pub(super) bufs: &'a mut GpuBuffers<R>,
}

impl<R: DeviceReal> KernelDevice for GpuDevice<'_, R> {
    type Error = CudaError;

    fn ensure(&mut self, buf: Buf, len: usize) -> Result<(), CudaError> {
        if len == 0 {
            self.bufs.null.insert(buf);
            return Ok(());
        }
        self.bufs.null.remove(&buf);
        let s = self.stream;
        if buf.is_int() {
            if self.bufs.ints.get(&buf).is_none_or(|v| v.len() < len) {
                self.bufs.ints.insert(buf, s.alloc_zeros::<i32>(len).map_err(drv("allocating device memory"))?);
            }
        } else if self.bufs.reals.get(&buf).is_none_or(|v| v.len() < len) {
            self.bufs.reals.insert(buf, s.alloc_zeros::<R>(len).map_err(drv("allocating device memory"))?);
        }
        Ok(())
    }

    fn write(&mut self, buf: Buf, data: &[f64]) -> Result<(), CudaError> {
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.bufs.reals.get_mut(&buf).filter(|d| d.len() >= data.len());
        let dst = dst.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {} entries do not fit the buffer", data.len())))?;
        // From pageable memory the driver stages the data before it returns, so `host` may go;
        // the orchestration synchronises once after all uploads.
        if std::any::TypeId::of::<R>() == std::any::TypeId::of::<f64>() {
            // Double kernels take the caller's data as it is: no converted copy (at B = 256,
            // T = 50 the cost Hessians alone are 20 MB, uploaded by every solve and backward).
            // SAFETY: `R` is `f64` (checked above), so the slice is reinterpreted as itself.
            let same: &[R] = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<R>(), data.len()) };
            return self.stream.memcpy_htod(same, &mut dst.slice_mut(0..data.len())).map_err(drv("copying to the device"));
        }
        let host: Vec<R> = data.iter().map(|&x| R::from_f64(x)).collect();
        self.stream.memcpy_htod(&host, &mut dst.slice_mut(0..data.len())).map_err(drv("copying to the device"))
    }

    fn write_ints(&mut self, buf: Buf, data: &[i32]) -> Result<(), CudaError> {
        let dst = self.bufs.ints.get_mut(&buf).filter(|d| d.len() >= data.len());
        let dst = dst.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {} entries do not fit the buffer", data.len())))?;
        self.stream.memcpy_htod(data, &mut dst.slice_mut(0..data.len())).map_err(drv("copying to the device"))
    }

    fn read(&mut self, buf: Buf, len: usize) -> Result<Vec<f64>, CudaError> {
        let src = self.bufs.reals.get(&buf).filter(|d| d.len() >= len);
        let src = src.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {len} entries read from a smaller buffer")))?;
        let mut h = vec![R::from_f64(0.0); len];
        self.stream.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
        self.stream.synchronize().map_err(drv("copying from the device"))?;
        Ok(h.into_iter().map(R::to_f64).collect())
    }

    fn read_ints(&mut self, buf: Buf, len: usize) -> Result<Vec<i32>, CudaError> {
        let src = self.bufs.ints.get(&buf).filter(|d| d.len() >= len);
        let src = src.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {len} entries read from a smaller buffer")))?;
        let mut h = vec![0i32; len];
        self.stream.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
        self.stream.synchronize().map_err(drv("copying from the device"))?;
        Ok(h)
    }

    fn launch(&mut self, entry: &str, grid: u32, block: u32, args: &[Arg], batch: i32) -> Result<(), CudaError> {
        let func = self.funcs.get(entry).ok_or_else(|| CudaError::Batch(format!("kernel entry point {entry} is not loaded")))?;
        let s: &CudaStream = self.stream;
        // Each buffer's device address (0 for a null one), with cudarc's stream-ordering guards
        // held until the launch is issued.
        let mut guards = Vec::new();
        let mut ptrs: Vec<u64> = Vec::with_capacity(args.len());
        for a in args {
            let p = match a.buf {
                Some(b) if !self.bufs.null.contains(&b) => {
                    let (p, g) = if b.is_int() {
                        self.bufs.ints.get(&b).map(|v| v.device_ptr(s))
                    } else {
                        self.bufs.reals.get(&b).map(|v| v.device_ptr(s))
                    }
                    .ok_or_else(|| CudaError::Batch(format!("{entry}: buffer {b:?} was never allocated")))?;
                    guards.push(g);
                    p
                }
                _ => 0,
            };
            ptrs.push(p);
        }
        let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
        let mut lb = s.launch_builder(func);
        for (a, p) in args.iter().zip(&ptrs) {
            if a.buf.is_some() {
                lb.arg(p);
            } else {
                lb.arg(&batch);
            }
        }
        // SAFETY: the argument list is the kernel's own (`args` of its kind, checked against
        // every rendered `extern "C"` signature by cuda::args' tests): each buffer argument is
        // an 8-byte device address of the kernel's real type or int (the buffers were allocated
        // in the precision of the kernels they serve), null only where the kernels accept it
        // (u_init, grad_params, params with NP = 0), then `int batch`. The orchestration ensured
        // every buffer for this batch, so the kernels index within them; threads past the batch
        // return at once.
        unsafe { lb.launch(cfg) }.map_err(drv("launching a kernel"))?;
        drop(guards);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(drv("running the kernels"))
    }

    fn max_block(&mut self, entry: &str) -> Result<u32, CudaError> {
        let func = self.funcs.get(entry).ok_or_else(|| CudaError::Batch(format!("kernel entry point {entry} is not loaded")))?;
        let n = func.max_threads_per_block().map_err(drv("reading the kernel's threads-per-block limit"))?;
        Ok(n.max(0) as u32)
    }
}

pub(super) fn ensure_all<D: KernelDevice>(dev: &mut D, sizes: &[(Buf, usize)]) -> Result<(), D::Error> {
    for &(buf, len) in sizes {
        dev.ensure(buf, len.max(1))?;
    }
    Ok(())
}

pub(super) fn alloc<R: DeviceReal>(stream: &Arc<CudaStream>, funcs: &HashMap<String, CudaFunction>, sizes: &[(Buf, usize)]) -> Result<GpuBuffers<R>, CudaError> {
    let mut bufs = GpuBuffers::default();
    ensure_all(&mut GpuDevice { stream, funcs, bufs: &mut bufs }, sizes)?;
    Ok(bufs)
}
