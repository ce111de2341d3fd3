// Host emulation of the CUDA dialect the rendered kernels use, so that the SAME kernel source
// compiles with a host C++17 compiler (g++/clang++) and runs on the CPU (mpc_runtime::cuda::host).
//
// Included before the kernel source (`-include host_compat.h`); the kernel text is unchanged.
//
// * Qualifiers: __global__, __device__, __host__, __forceinline__, __noinline__, __restrict__,
//   __constant__,
//   __shared__ (a block-wide static: see below).
// * Thread indices: threadIdx/blockIdx are thread_local, blockDim/gridDim are process-wide;
//   mpc_host::launch runs a grid block after block, and the threads of one block as real
//   cooperating std::threads, so __syncthreads() is a real barrier across them.
// * Bit casts: __longlong_as_double, __double_as_longlong, __int_as_float, __float_as_int.
// * atomicAdd on int.
// * Math: the C library's sin/sinf/fmax/... (glibc's, as Rust's f64 methods use on Linux).
//
// * Warps: the threads of a block form warps of 32 (threadIdx.x / 32), each with its own
//   barrier behind __syncwarp() and exchange slots behind __shfl_sync() (full-mask use only,
//   every lane calling, as the kernels do).
//
// Limits: __shared__ variables are plain statics (correct while one block runs at a time,
// which mpc_host::launch guarantees); shuffles move values of up to 8 bytes.
#ifndef MPC_HOST_COMPAT_H
#define MPC_HOST_COMPAT_H

#ifdef __CUDACC__
#error "host_compat.h is for host C++ compilers only"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx(0, 0, 0);
inline thread_local dim3 blockIdx(0, 0, 0);
inline dim3 blockDim(1, 1, 1);
inline dim3 gridDim(1, 1, 1);

// Atomics (the GCC builtins; sequentially consistent).
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, sizeof d); return d; }
inline long long __double_as_longlong(double d) { long long v; memcpy(&v, &d, sizeof v); return v; }
inline float __int_as_float(int v) { float f; memcpy(&f, &v, sizeof f); return f; }
inline int __float_as_int(float f) { int v; memcpy(&v, &f, sizeof v); return v; }

namespace mpc_host {

/// A reusable barrier for the threads of one emulated block (C++17 has no std::barrier).
class Barrier {
public:
    explicit Barrier(unsigned n) : n_(n) {}
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lk(m_);
        const unsigned gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lk, [&] { return gen != gen_; });
        }
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    unsigned n_, count_ = 0, gen_ = 0;
};

inline thread_local Barrier* block_barrier = nullptr;

/// One emulated warp: a barrier over its lanes and an exchange slot per lane for shuffles.
struct Warp {
    explicit Warp(unsigned lanes) : barrier(lanes) {}
    Barrier barrier;
    unsigned char slots[32][8];
};

inline thread_local Warp* warp = nullptr;
inline thread_local unsigned lane_id = 0;

}  // namespace mpc_host

/// Every thread of the block waits here until all have arrived. A thread that returned from
/// the kernel early must not leave others waiting (same rule as on the GPU).
inline void __syncthreads() {
    if (mpc_host::block_barrier) mpc_host::block_barrier->arrive_and_wait();
}

/// The lanes of the calling thread's warp wait for each other (the kernels call it with the
/// full mask, from every lane).
inline void __syncwarp(unsigned = 0xffffffffu) {
    if (mpc_host::warp) mpc_host::warp->barrier.arrive_and_wait();
}

/// `v` of lane `src` (within segments of `width` lanes) of the calling thread's warp; every
/// lane of the warp must call it (full mask), as on the GPU.
template <typename T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move up to 8 bytes");
    mpc_host::Warp* w = mpc_host::warp;
    if (!w) return v;
    memcpy(w->slots[mpc_host::lane_id], &v, sizeof(T));
    w->barrier.arrive_and_wait();
    const unsigned base = mpc_host::lane_id - mpc_host::lane_id % (unsigned)width;
    T out;
    memcpy(&out, w->slots[base + (unsigned)src % (unsigned)width], sizeof(T));
    w->barrier.arrive_and_wait();  // nobody overwrites a slot before everyone has read
    return out;
}

namespace mpc_host {

/// Runs `kernel(args...)` over a 1-D grid: blocks one after the other, the `block` threads of a
/// block concurrently as std::threads sharing a barrier. Returns 0, or 1 when a thread threw.
template <typename Kernel, typename... Args>
int launch(unsigned grid, unsigned block, Kernel kernel, Args... args) {
    gridDim = dim3(grid);
    blockDim = dim3(block);
    int failed = 0;
    for (unsigned b = 0; b < grid; ++b) {
        Barrier barrier(block);
        std::vector<std::unique_ptr<Warp>> warps;
        for (unsigned w = 0; w * 32 < block; ++w) warps.emplace_back(new Warp(block - w * 32 < 32 ? block - w * 32 : 32));
        std::vector<std::thread> threads;
        std::vector<int> errs(block, 0);
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([&, t] {
                threadIdx = dim3(t);
                blockIdx = dim3(b);
                block_barrier = &barrier;
                warp = warps[t / 32].get();
                lane_id = t % 32;
                try {
                    kernel(args...);
                } catch (...) {
                    errs[t] = 1;
                }
                block_barrier = nullptr;
                warp = nullptr;
            });
        }
        for (auto& th : threads) th.join();
        for (int e : errs) failed |= e;
    }
    return failed;
}

}  // namespace mpc_host

#endif  // MPC_HOST_COMPAT_H
