#ifndef @guard@
#define @guard@

@prelude@
namespace @ns@ {

[[maybe_unused]] constexpr int NX = @nx@;  // states: @states@
[[maybe_unused]] constexpr int NU = @nu@;  // controls: @controls@
[[maybe_unused]] constexpr int NZ = @n@;  // z = [x; u]
[[maybe_unused]] constexpr int NP = @np@;  // parameters: @params@
[[maybe_unused]] constexpr double CONTROL_LOWER[NU] = {@lower@};
[[maybe_unused]] constexpr double CONTROL_UPPER[NU] = {@upper@};

/// Run-time parameters, in the order of the Rust model's PARAM_NAMES.
template <typename T>
struct Params {
@param_fields@};

/// The parameter defaults declared in the model.
template <typename T>
__host__ __device__ inline Params<T> default_params() {
    Params<T> p;
@param_defaults@    return p;
}

/// x_next = f(x, u) (@nsteps@ operations).
template <typename T>
__device__ __forceinline__ void step(const T* __restrict__ x_, const T* __restrict__ u_, const Params<T>& p_, T* __restrict__ x_next_) {
@load_cuda@@step_body@}

/// x_next = f(x, u), A = df/dx (NX*NX, row-major), B = df/du (NX*NU, row-major) (@nlin@ operations).
template <typename T>
__device__ __forceinline__ void linearize(const T* __restrict__ x_, const T* __restrict__ u_, const Params<T>& p_, T* __restrict__ x_next_, T* __restrict__ A_, T* __restrict__ B_) {
@load_cuda@@lin_body@}

/// H = sum_i lambda_i d2 f_i / dz2 (NZ*NZ, row-major, symmetric) (@nhess@ operations).
template <typename T>
__device__ __forceinline__ void weighted_hessian(const T* __restrict__ x_, const T* __restrict__ u_, const T* __restrict__ lambda_, const Params<T>& p_, T* __restrict__ H_) {
@load_cuda@@hess_body@}

/// Fp = df/dtheta (NX*NP, row-major; the parameters in Params order) (@nfp@ operations).
template <typename T>
__device__ __forceinline__ void param_jacobian(const T* __restrict__ x_, const T* __restrict__ u_, const Params<T>& p_, T* __restrict__ Fp_) {
@load_cuda@@fp_body@}

/// Hp = d2 (lambda' f) / dz dtheta (NZ*NP, row-major) (@nhp@ operations).
template <typename T>
__device__ __forceinline__ void param_weighted_hessian(const T* __restrict__ x_, const T* __restrict__ u_, const T* __restrict__ lambda_, const Params<T>& p_, T* __restrict__ Hp_) {
@load_cuda@@hp_body@}

}  // namespace @ns@

#endif  // @guard@
