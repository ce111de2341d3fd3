#ifndef MPC_MATH_PRELUDE
#define MPC_MATH_PRELUDE
#define MPC_INF __builtin_huge_val()
#define MPC_UNARY(name, f32, f64) \
    __device__ __forceinline__ float name(float a) { return f32(a); } \
    __device__ __forceinline__ double name(double a) { return f64(a); }
MPC_UNARY(mpc_sin, sinf, sin)
MPC_UNARY(mpc_cos, cosf, cos)
MPC_UNARY(mpc_tan, tanf, tan)
MPC_UNARY(mpc_asin, asinf, asin)
MPC_UNARY(mpc_acos, acosf, acos)
MPC_UNARY(mpc_atan, atanf, atan)
MPC_UNARY(mpc_sinh, sinhf, sinh)
MPC_UNARY(mpc_cosh, coshf, cosh)
MPC_UNARY(mpc_tanh, tanhf, tanh)
MPC_UNARY(mpc_exp, expf, exp)
MPC_UNARY(mpc_ln, logf, log)
MPC_UNARY(mpc_sqrt, sqrtf, sqrt)
MPC_UNARY(mpc_abs, fabsf, fabs)
#undef MPC_UNARY
__device__ __forceinline__ float mpc_atan2(float a, float b) { return atan2f(a, b); }
__device__ __forceinline__ double mpc_atan2(double a, double b) { return atan2(a, b); }
__device__ __forceinline__ float mpc_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double mpc_pow(double a, double b) { return pow(a, b); }
__device__ __forceinline__ float mpc_hypot(float a, float b) { return hypotf(a, b); }
__device__ __forceinline__ double mpc_hypot(double a, double b) { return hypot(a, b); }
/// a^n by repeated squaring (n may be negative).
template <typename T> __device__ __forceinline__ T mpc_powi(T a, int n) {
    unsigned int m = n < 0 ? -n : n;
    T r = T(1);
    while (m) { if (m & 1u) r *= a; a *= a; m >>= 1; }
    return n < 0 ? T(1) / r : r;
}
/// sign(a) with sign(0) = 0.
template <typename T> __device__ __forceinline__ T mpc_sign(T a) { return a > T(0) ? T(1) : (a < T(0) ? T(-1) : T(0)); }
/// a / b, or 0 where b == 0 (keeps derivatives of norms finite at 0).
template <typename T> __device__ __forceinline__ T mpc_div_nz(T a, T b) { return b != T(0) ? a / b : T(0); }
#endif  // MPC_MATH_PRELUDE
