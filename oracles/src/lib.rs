//! Hand-written reference implementations of the bundled models, coded straight from
//! `shared/reference/models.md`, independent of `#[mpc_model]`.
//!
//! They are test oracles, a dev-dependency only (no part of the product's API): each model's step is written once, generically over a [`Scalar`], and its
//! Jacobians and co-state–weighted Hessians come from second-order forward-mode automatic
//! differentiation ([`Jet`]), so they are exact to rounding. They are not tuned for speed.

use mpc_runtime::Dynamics;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Arithmetic that the reference models are written against: `f64` for values, [`Jet`] for
/// derivatives.
pub trait Scalar:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
{
    /// A constant.
    fn cst(v: f64) -> Self;
    /// The value.
    fn val(self) -> f64;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `atan2(self, x)`.
    fn atan2(self, x: Self) -> Self;
    /// `sqrt(a² + b² + c²)`, with zero derivatives at the origin (PyTorch's convention).
    fn norm3(a: Self, b: Self, c: Self) -> Self;
    /// `clamp(self, lo, hi)` with the derivative of the identity on `[lo, hi]` (bounds
    /// included) and zero outside.
    fn clamp_to(self, lo: f64, hi: f64) -> Self {
        let v = self.val();
        if v > hi {
            Self::cst(hi)
        } else if v < lo {
            Self::cst(lo)
        } else {
            self
        }
    }
}

impl Scalar for f64 {
    fn cst(v: f64) -> Self {
        v
    }
    fn val(self) -> f64 {
        self
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
    fn cos(self) -> Self {
        f64::cos(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn atan2(self, x: Self) -> Self {
        f64::atan2(self, x)
    }
    fn norm3(a: Self, b: Self, c: Self) -> Self {
        (a * a + b * b + c * c).sqrt()
    }
}

/// A second-order jet in `N` variables: value, gradient and Hessian.
#[derive(Clone, Copy, Debug)]
pub struct Jet<const N: usize> {
    /// Value.
    pub v: f64,
    /// Gradient.
    pub g: [f64; N],
    /// Hessian (symmetric).
    pub h: [[f64; N]; N],
}

impl<const N: usize> Jet<N> {
    /// The `i`-th independent variable with value `v`.
    pub fn var(v: f64, i: usize) -> Self {
        let mut j = Self::cst(v);
        j.g[i] = 1.0;
        j
    }
    /// `φ(self)` given `φ`, `φ'`, `φ''` at the value.
    #[inline]
    fn unary(self, f: f64, d1: f64, d2: f64) -> Self {
        let mut r = Self::cst(f);
        for i in 0..N {
            r.g[i] = d1 * self.g[i];
            for j in 0..N {
                r.h[i][j] = d1 * self.h[i][j] + d2 * self.g[i] * self.g[j];
            }
        }
        r
    }
    /// `φ(a, b)` given the value and the first and second partials of `φ`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn binary(a: Self, b: Self, f: f64, fa: f64, fb: f64, faa: f64, fab: f64, fbb: f64) -> Self {
        let mut r = Self::cst(f);
        for i in 0..N {
            r.g[i] = fa * a.g[i] + fb * b.g[i];
            for j in 0..N {
                r.h[i][j] = fa * a.h[i][j]
                    + fb * b.h[i][j]
                    + faa * a.g[i] * a.g[j]
                    + fab * (a.g[i] * b.g[j] + b.g[i] * a.g[j])
                    + fbb * b.g[i] * b.g[j];
            }
        }
        r
    }
}

impl<const N: usize> Add for Jet<N> {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self.v += o.v;
        for i in 0..N {
            self.g[i] += o.g[i];
            for j in 0..N {
                self.h[i][j] += o.h[i][j];
            }
        }
        self
    }
}
impl<const N: usize> Sub for Jet<N> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        self + (-o)
    }
}
impl<const N: usize> Neg for Jet<N> {
    type Output = Self;
    fn neg(mut self) -> Self {
        self.v = -self.v;
        for i in 0..N {
            self.g[i] = -self.g[i];
            for j in 0..N {
                self.h[i][j] = -self.h[i][j];
            }
        }
        self
    }
}
impl<const N: usize> Mul for Jet<N> {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        Self::binary(self, o, self.v * o.v, o.v, self.v, 0.0, 1.0, 0.0)
    }
}
impl<const N: usize> Div for Jet<N> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let r = 1.0 / o.v;
        let q = self.v / o.v;
        // f = a/b: fa = 1/b, fb = -a/b², faa = 0, fab = -1/b², fbb = 2a/b³
        Self::binary(self, o, q, r, -q * r, 0.0, -r * r, 2.0 * q * r * r)
    }
}
impl<const N: usize> Add<f64> for Jet<N> {
    type Output = Self;
    fn add(mut self, o: f64) -> Self {
        self.v += o;
        self
    }
}
impl<const N: usize> Sub<f64> for Jet<N> {
    type Output = Self;
    fn sub(mut self, o: f64) -> Self {
        self.v -= o;
        self
    }
}
impl<const N: usize> Mul<f64> for Jet<N> {
    type Output = Self;
    fn mul(mut self, o: f64) -> Self {
        self.v *= o;
        for i in 0..N {
            self.g[i] *= o;
            for j in 0..N {
                self.h[i][j] *= o;
            }
        }
        self
    }
}
impl<const N: usize> Div<f64> for Jet<N> {
    type Output = Self;
    fn div(mut self, o: f64) -> Self {
        self.v /= o;
        for i in 0..N {
            self.g[i] /= o;
            for j in 0..N {
                self.h[i][j] /= o;
            }
        }
        self
    }
}

impl<const N: usize> Scalar for Jet<N> {
    fn cst(v: f64) -> Self {
        Self { v, g: [0.0; N], h: [[0.0; N]; N] }
    }
    fn val(self) -> f64 {
        self.v
    }
    fn sin(self) -> Self {
        let (s, c) = self.v.sin_cos();
        self.unary(s, c, -s)
    }
    fn cos(self) -> Self {
        let (s, c) = self.v.sin_cos();
        self.unary(c, -s, -c)
    }
    fn sqrt(self) -> Self {
        let r = self.v.sqrt();
        self.unary(r, 0.5 / r, -0.25 / (r * self.v))
    }
    fn atan2(self, x: Self) -> Self {
        // φ(y, x) = atan2(y, x): φ_y = x/r², φ_x = -y/r², φ_yy = -2xy/r⁴, φ_xx = 2xy/r⁴,
        // φ_xy = (y² - x²)/r⁴.
        let (y0, x0) = (self.v, x.v);
        let r2 = x0 * x0 + y0 * y0;
        let r4 = r2 * r2;
        Self::binary(
            self,
            x,
            y0.atan2(x0),
            x0 / r2,
            -y0 / r2,
            -2.0 * x0 * y0 / r4,
            (y0 * y0 - x0 * x0) / r4,
            2.0 * x0 * y0 / r4,
        )
    }
    fn norm3(a: Self, b: Self, c: Self) -> Self {
        let v = (a.v * a.v + b.v * b.v + c.v * c.v).sqrt();
        if v == 0.0 { Self::cst(0.0) } else { (a * a + b * b + c * c).sqrt() }
    }
}

/// A reference model: sizes, named parameters and a generic step.
pub trait RefModel: Clone + Default + Send + Sync {
    /// Model name as in the exchange format.
    const NAME: &'static str;
    /// State dimension.
    const NX: usize;
    /// Control dimension.
    const NU: usize;
    /// Parameter names.
    const PARAMS: &'static [&'static str];
    /// Set a parameter by name (`Err` names the known parameters).
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), String>;
    /// `out = f(x, u)`.
    fn eval<S: Scalar>(&self, x: &[S], u: &[S], out: &mut [S]);
}

fn unknown_param(model: &str, name: &str, known: &[&str]) -> String {
    format!("model `{model}` has no parameter `{name}` (its parameters: {})", known.join(", "))
}

/// mpc.pytorch `PendulumDx(simple=True)`, clamp switched off (see models.md): `max_torque` is
/// accepted and stored but does not enter the step.
#[derive(Clone, Debug, PartialEq)]
pub struct RefPendulum {
    /// Gravity.
    pub g: f64,
    /// Mass.
    pub m: f64,
    /// Length.
    pub l: f64,
    /// Time step.
    pub dt: f64,
    /// Torque limit (informational).
    pub max_torque: f64,
}

impl Default for RefPendulum {
    fn default() -> Self {
        Self { g: 10.0, m: 1.0, l: 1.0, dt: 0.05, max_torque: 2.0 }
    }
}

impl RefModel for RefPendulum {
    const NAME: &'static str = "pendulum";
    const NX: usize = 3;
    const NU: usize = 1;
    const PARAMS: &'static [&'static str] = &["g", "m", "l", "dt", "max_torque"];
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), String> {
        match name {
            "g" => self.g = value,
            "m" => self.m = value,
            "l" => self.l = value,
            "dt" => self.dt = value,
            "max_torque" => self.max_torque = value,
            _ => return Err(unknown_param(Self::NAME, name, Self::PARAMS)),
        }
        Ok(())
    }
    fn eval<S: Scalar>(&self, x: &[S], u: &[S], out: &mut [S]) {
        let (c, s, w) = (x[0], x[1], x[2]);
        let th = s.atan2(c);
        let w1 = w + (s * (3.0 * self.g / (2.0 * self.l)) + u[0] * (3.0 / (self.m * self.l * self.l))) * self.dt;
        let th1 = th + w1 * self.dt;
        out[0] = th1.cos();
        out[1] = th1.sin();
        out[2] = w1;
    }
}

/// mpc.pytorch `CartpoleDx()`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefCartpole {
    /// Gravity.
    pub gravity: f64,
    /// Cart mass.
    pub masscart: f64,
    /// Pole mass.
    pub masspole: f64,
    /// Pole (half) length.
    pub length: f64,
    /// Time step.
    pub dt: f64,
    /// Force clamp.
    pub force_mag: f64,
}

impl Default for RefCartpole {
    fn default() -> Self {
        Self { gravity: 9.8, masscart: 1.0, masspole: 0.1, length: 0.5, dt: 0.05, force_mag: 100.0 }
    }
}

impl RefModel for RefCartpole {
    const NAME: &'static str = "cartpole";
    const NX: usize = 5;
    const NU: usize = 1;
    const PARAMS: &'static [&'static str] = &["gravity", "masscart", "masspole", "length", "dt", "force_mag"];
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), String> {
        match name {
            "gravity" => self.gravity = value,
            "masscart" => self.masscart = value,
            "masspole" => self.masspole = value,
            "length" => self.length = value,
            "dt" => self.dt = value,
            "force_mag" => self.force_mag = value,
            _ => return Err(unknown_param(Self::NAME, name, Self::PARAMS)),
        }
        Ok(())
    }
    fn eval<S: Scalar>(&self, x: &[S], u: &[S], out: &mut [S]) {
        let (p, v, c, s, w) = (x[0], x[1], x[2], x[3], x[4]);
        let uc = u[0].clamp_to(-self.force_mag, self.force_mag);
        let th = s.atan2(c);
        let mt = self.masscart + self.masspole;
        let ml = self.masspole * self.length;
        let a = (uc + w * w * s * ml) / mt;
        let alpha = (s * self.gravity - c * a) / ((S::cst(4.0 / 3.0) - c * c * (self.masspole / mt)) * self.length);
        let acc = a - alpha * c * (ml / mt);
        let th1 = th + w * self.dt;
        out[0] = p + v * self.dt;
        out[1] = v + acc * self.dt;
        out[2] = th1.cos();
        out[3] = th1.sin();
        out[4] = w + alpha * self.dt;
    }
}

/// CA-AC-MPC quadrotor (`drone_ts.py`), collective thrust and body rates.
#[derive(Clone, Debug, PartialEq)]
pub struct RefQuadrotor {
    /// Mass.
    pub mass: f64,
    /// Gravity.
    pub gravity: f64,
    /// Time step.
    pub dt: f64,
    /// Added to the quaternion norm before normalising.
    pub quat_norm_eps: f64,
    /// Added to the body-rate norm.
    pub omega_norm_eps: f64,
}

impl Default for RefQuadrotor {
    fn default() -> Self {
        Self { mass: 0.752, gravity: 9.8066, dt: 0.05, quat_norm_eps: 1e-8, omega_norm_eps: 1e-8 }
    }
}

impl RefModel for RefQuadrotor {
    const NAME: &'static str = "quadrotor";
    const NX: usize = 10;
    const NU: usize = 4;
    const PARAMS: &'static [&'static str] = &["mass", "gravity", "dt", "quat_norm_eps", "omega_norm_eps"];
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), String> {
        match name {
            "mass" => self.mass = value,
            "gravity" => self.gravity = value,
            "dt" => self.dt = value,
            "quat_norm_eps" => self.quat_norm_eps = value,
            "omega_norm_eps" => self.omega_norm_eps = value,
            _ => return Err(unknown_param(Self::NAME, name, Self::PARAMS)),
        }
        Ok(())
    }
    fn eval<S: Scalar>(&self, x: &[S], u: &[S], out: &mut [S]) {
        let dt = self.dt;
        let (qw, qx, qy, qz) = (x[3], x[4], x[5], x[6]);
        let (f, wx, wy, wz) = (u[0], u[1], u[2], u[3]);
        for i in 0..3 {
            out[i] = x[i] + x[7 + i] * dt;
        }
        let n = S::norm3(wx, wy, wz) + self.omega_norm_eps;
        let h = n * (0.5 * dt);
        let sh = h.sin();
        let (ew, ex, ey, ez) = (h.cos(), wx / n * sh, wy / n * sh, wz / n * sh);
        let tw = qw * ew - qx * ex - qy * ey - qz * ez;
        let tx = qw * ex + qx * ew + qy * ez - qz * ey;
        let ty = qw * ey + qy * ew + qz * ex - qx * ez;
        let tz = qw * ez + qz * ew + qx * ey - qy * ex;
        let qn = (tw * tw + tx * tx + ty * ty + tz * tz).sqrt() + self.quat_norm_eps;
        out[3] = tw / qn;
        out[4] = tx / qn;
        out[5] = ty / qn;
        out[6] = tz / qn;
        let t0 = f * ((qw * qy + qx * qz) * 2.0);
        let t1 = f * ((qy * qz - qw * qx) * 2.0);
        let t2 = f * (qw * qw - qx * qx - qy * qy + qz * qz);
        out[7] = x[7] + (t0 / self.mass) * dt;
        out[8] = x[8] + (t1 / self.mass) * dt;
        out[9] = x[9] + (t2 / self.mass - self.gravity) * dt;
    }
}

/// Adapter giving a [`RefModel`] the solver's [`Dynamics`] interface; `N` must be
/// `NX + NU` (checked when built).
#[derive(Clone, Debug, PartialEq)]
pub struct RefDynamics<M: RefModel, const N: usize>(pub M);

impl<M: RefModel, const N: usize> RefDynamics<M, N> {
    /// Wrap a model.
    pub fn new(m: M) -> Self {
        assert_eq!(N, M::NX + M::NU, "RefDynamics: N must equal NX + NU");
        Self(m)
    }

    fn jets(&self, x: &[f64], u: &[f64], out: &mut [Jet<N>; 16]) {
        let (nx, nu) = (M::NX, M::NU);
        let mut xj = [Jet::<N>::cst(0.0); 16];
        let mut uj = [Jet::<N>::cst(0.0); 16];
        for i in 0..nx {
            xj[i] = Jet::var(x[i], i);
        }
        for i in 0..nu {
            uj[i] = Jet::var(u[i], nx + i);
        }
        self.0.eval(&xj[..nx], &uj[..nu], &mut out[..nx]);
    }
}

/// The reference pendulum as [`Dynamics`].
pub type Pendulum = RefDynamics<RefPendulum, 4>;
/// The reference cart-pole as [`Dynamics`].
pub type Cartpole = RefDynamics<RefCartpole, 6>;
/// The reference quadrotor as [`Dynamics`].
pub type Quadrotor = RefDynamics<RefQuadrotor, 14>;

impl<M: RefModel, const N: usize> Dynamics for RefDynamics<M, N> {
    fn nx(&self) -> usize {
        M::NX
    }
    fn nu(&self) -> usize {
        M::NU
    }
    fn step(&self, x: &[f64], u: &[f64], x_next: &mut [f64]) {
        self.0.eval(&x[..M::NX], &u[..M::NU], &mut x_next[..M::NX]);
    }
    fn linearize(&self, x: &[f64], u: &[f64], x_next: &mut [f64], a: &mut [f64], b: &mut [f64]) {
        let (nx, nu) = (M::NX, M::NU);
        let mut out = [Jet::<N>::cst(0.0); 16];
        self.jets(x, u, &mut out);
        for i in 0..nx {
            x_next[i] = out[i].v;
            for j in 0..nx {
                a[i * nx + j] = out[i].g[j];
            }
            for j in 0..nu {
                b[i * nu + j] = out[i].g[nx + j];
            }
        }
    }
    fn weighted_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], h: &mut [f64]) {
        let mut out = [Jet::<N>::cst(0.0); 16];
        self.jets(x, u, &mut out);
        for i in 0..N {
            for j in 0..N {
                h[i * N + j] = (0..M::NX).map(|k| lambda[k] * out[k].h[i][j]).sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check<D: Dynamics>(d: &D, x: &[f64], u: &[f64]) {
        let (nx, nu) = (d.nx(), d.nu());
        let n = nx + nu;
        let mut xn = vec![0.0; nx];
        let mut a = vec![0.0; nx * nx];
        let mut b = vec![0.0; nx * nu];
        d.linearize(x, u, &mut xn, &mut a, &mut b);
        let mut xs = vec![0.0; nx];
        d.step(x, u, &mut xs);
        assert_eq!(xs, xn);
        let lam: Vec<f64> = (0..nx).map(|i| 0.3 + 0.1 * i as f64).collect();
        let mut h = vec![0.0; n * n];
        d.weighted_hessian(x, u, &lam, &mut h);
        let hstep = 1e-6;
        for j in 0..n {
            let mut zp: Vec<f64> = x.iter().chain(u).copied().collect();
            let mut zm = zp.clone();
            zp[j] += hstep;
            zm[j] -= hstep;
            let (mut fp, mut fm) = (vec![0.0; nx], vec![0.0; nx]);
            let (mut ap, mut bp, mut am, mut bm) = (a.clone(), b.clone(), a.clone(), b.clone());
            d.linearize(&zp[..nx], &zp[nx..], &mut fp, &mut ap, &mut bp);
            d.linearize(&zm[..nx], &zm[nx..], &mut fm, &mut am, &mut bm);
            for i in 0..nx {
                let fd = (fp[i] - fm[i]) / (2.0 * hstep);
                let an = if j < nx { a[i * nx + j] } else { b[i * nu + j - nx] };
                assert!((fd - an).abs() < 1e-7 * (1.0 + an.abs()), "J[{i}][{j}]: fd {fd} vs {an}");
            }
            // d/dz_j of Σ λ_k ∇f_k  = column j of H
            for m in 0..n {
                let g = |aa: &[f64], bb: &[f64]| -> f64 {
                    (0..nx).map(|k| lam[k] * if m < nx { aa[k * nx + m] } else { bb[k * nu + m - nx] }).sum()
                };
                let fd = (g(&ap, &bp) - g(&am, &bm)) / (2.0 * hstep);
                assert!(
                    (fd - h[m * n + j]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "H[{m}][{j}]: fd {fd} vs {}",
                    h[m * n + j]
                );
                assert!((h[m * n + j] - h[j * n + m]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        fd_check(&Pendulum::new(RefPendulum::default()), &[0.8, 0.6, -0.3], &[0.7]);
        fd_check(&Cartpole::new(RefCartpole::default()), &[0.1, -0.2, 0.9, 0.43, 0.5], &[3.0]);
        fd_check(
            &Quadrotor::new(RefQuadrotor::default()),
            &[0.1, 0.2, -0.1, 0.98, 0.1, -0.1, 0.12, 0.3, -0.2, 0.1],
            &[7.0, 0.5, -0.3, 0.2],
        );
    }

    #[test]
    fn quadrotor_hover_is_finite_at_zero_rates() {
        let d = Quadrotor::new(RefQuadrotor::default());
        let x = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let u = [0.752 * 9.8066, 0.0, 0.0, 0.0];
        let mut xn = [0.0; 10];
        let mut a = [0.0; 100];
        let mut b = [0.0; 40];
        d.linearize(&x, &u, &mut xn, &mut a, &mut b);
        assert!(a.iter().chain(&b).all(|v| v.is_finite()));
        // ∂e_vec/∂ω ≈ 0.025 I enters ∂q'/∂ω.
        assert!((b[4 * 4 + 1] - 0.025).abs() < 1e-6, "{}", b[4 * 4 + 1]);
    }
}
