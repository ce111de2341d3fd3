//! A batch of problems as the solvers borrow it: the exchange format's flat arrays, checked
//! against the sizes, and one problem of it.

/// Control bounds on one side (lower or upper).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Bound<'a> {
    /// Unbounded (±inf).
    #[default]
    None,
    /// The same `nu` bounds for every problem and stage.
    PerControl(&'a [f64]),
    /// One bound per problem, stage and control (B×T×nu).
    PerStage(&'a [f64]),
}

/// A batch of problems, borrowed in the exchange format's flat layout.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Number of problems `B`.
    pub size: usize,
    /// Initial states, B×nx.
    pub x_init: &'a [f64],
    /// Stage cost Hessians `C`, B×T×n×n (symmetric).
    pub cost_hess: &'a [f64],
    /// Stage cost linear terms `c`, B×T×n.
    pub cost_lin: &'a [f64],
    /// Lower control bounds.
    pub u_lower: Bound<'a>,
    /// Upper control bounds.
    pub u_upper: Bound<'a>,
    /// Warm start B×T×nu (zeros when absent); projected onto the bounds.
    pub u_init: Option<&'a [f64]>,
}

/// One problem of a batch, as the per-problem kernels see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProblemRef<'a> {
    pub x_init: &'a [f64],
    pub cm: &'a [f64],
    pub cv: &'a [f64],
    pub lower: Bound<'a>,
    pub upper: Bound<'a>,
    pub u_init: Option<&'a [f64]>,
}

impl<'a> Batch<'a> {
    pub(crate) fn problem(&self, i: usize, horizon: usize, nx: usize, nu: usize) -> ProblemRef<'a> {
        let n = nx + nu;
        let per = |b: Bound<'a>| match b {
            Bound::PerStage(s) => Bound::PerStage(&s[i * horizon * nu..(i + 1) * horizon * nu]),
            other => other,
        };
        ProblemRef {
            x_init: &self.x_init[i * nx..(i + 1) * nx],
            cm: &self.cost_hess[i * horizon * n * n..(i + 1) * horizon * n * n],
            cv: &self.cost_lin[i * horizon * n..(i + 1) * horizon * n],
            lower: per(self.u_lower),
            upper: per(self.u_upper),
            u_init: self.u_init.map(|u| &u[i * horizon * nu..(i + 1) * horizon * nu]),
        }
    }

    /// Problem `i` as a batch of one (borrowing the same data).
    pub fn single(&self, i: usize, horizon: usize, nx: usize, nu: usize) -> Batch<'a> {
        self.range(i, i + 1, horizon, nx, nu)
    }

    /// Problems `i0..i1` as a batch (borrowing the same data).
    pub fn range(&self, i0: usize, i1: usize, horizon: usize, nx: usize, nu: usize) -> Batch<'a> {
        let n = nx + nu;
        let part = |b: Bound<'a>| match b {
            Bound::PerStage(s) => Bound::PerStage(&s[i0 * horizon * nu..i1 * horizon * nu]),
            other => other,
        };
        Batch {
            size: i1 - i0,
            x_init: &self.x_init[i0 * nx..i1 * nx],
            cost_hess: &self.cost_hess[i0 * horizon * n * n..i1 * horizon * n * n],
            cost_lin: &self.cost_lin[i0 * horizon * n..i1 * horizon * n],
            u_lower: part(self.u_lower),
            u_upper: part(self.u_upper),
            u_init: self.u_init.map(|u| &u[i0 * horizon * nu..i1 * horizon * nu]),
        }
    }

    /// Check the lengths of every array against `B`, `T`, `nx`, `nu`.
    pub fn check(&self, horizon: usize, nx: usize, nu: usize) -> Result<(), String> {
        let (b, t, n) = (self.size, horizon, nx + nu);
        let want = |name: &str, got: usize, want: usize| {
            if got == want { Ok(()) } else { Err(format!("{name}: expected {want} entries, got {got}")) }
        };
        want("x_init", self.x_init.len(), b * nx)?;
        want("C", self.cost_hess.len(), b * t * n * n)?;
        want("c", self.cost_lin.len(), b * t * n)?;
        for (name, bd) in [("u_lower", self.u_lower), ("u_upper", self.u_upper)] {
            match bd {
                Bound::None => {}
                Bound::PerControl(s) => want(name, s.len(), nu)?,
                Bound::PerStage(s) => want(name, s.len(), b * t * nu)?,
            }
        }
        if let Some(u) = self.u_init {
            want("u_init", u.len(), b * t * nu)?;
        }
        Ok(())
    }
}
