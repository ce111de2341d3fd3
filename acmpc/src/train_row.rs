//! The typed row of `train.csv`: one `f64` field per column, the column names from the field names.

/// Declares `TrainRow` with one `f64` field per CSV column, and its column names from the field
/// names: a column cannot be added, dropped or moved without its value.
macro_rules! train_row {
    ($($(#[doc = $doc:literal])+ $field:ident,)+) => {
        /// Number of columns of `train.csv`.
        const N_COLUMNS: usize = [$(stringify!($field)),+].len();

        /// One row of `train.csv` and one step of the TensorBoard file: the scalars of one PPO
        /// update. A field's name is its column's name and the field order is the column order;
        /// NaN values are written as empty cells (and left out of TensorBoard).
        pub(crate) struct TrainRow {
            $($(#[doc = $doc])+ pub(crate) $field: f64,)+
        }

        impl TrainRow {
            /// The column names, in order.
            pub(crate) const COLUMNS: [&'static str; N_COLUMNS] = [$(stringify!($field)),+];

            /// The values in the order of [`Self::COLUMNS`].
            pub(crate) fn values(&self) -> [f64; N_COLUMNS] {
                [$(self.$field),+]
            }
        }
    };
}

train_row! {
    /// PPO updates done, this one included.
    update,
    /// Environment steps taken.
    steps,
    /// Wall-clock training time over all resumed segments (s).
    wall_s,
    /// Environment steps per second since this segment started.
    steps_per_s,
    /// Learning rate of the schedule at this update.
    lr,
    /// Mean return of the last 100 finished episodes.
    ep_return_mean100,
    /// Mean length (steps) of the last 100 finished episodes.
    ep_length_mean100,
    /// Mean number of gates passed in the last 100 finished episodes.
    ep_gates_mean100,
    /// Mean number of laps in the last 100 finished episodes.
    ep_laps_mean100,
    /// Mean lap time (s) of those of the last 100 episodes that timed a lap.
    lap_time_mean100,
    /// Fraction of the last 100 episodes that ended on the ground or by missing a gate.
    crash_fraction100,
    /// Episodes finished.
    episodes,
    /// Clipped surrogate loss.
    policy_loss,
    /// Value loss (MSE).
    value_loss,
    /// Approximate KL between the rollout policy and the updated one.
    approx_kl,
    /// Fraction of samples whose probability ratio was clipped.
    clip_fraction,
    /// Gradient norm before clipping.
    grad_norm,
    /// Explained variance of the values on the rollout.
    explained_variance,
    /// Mean std of the Gaussian after the update.
    std,
    /// Time spent collecting the rollout (s).
    rollout_s,
    /// Time spent in the PPO update (s).
    update_s,
    /// Resident memory after the update (MiB).
    rss_mib,
    /// Mean return of the deterministic evaluation (NaN when none was due).
    eval_return,
    /// Mean number of gates passed in the evaluation.
    eval_gates,
    /// Best lap time of the evaluation (s).
    eval_lap_time,
    /// Minibatch steps of the actor and critic.
    policy_minibatches,
    /// Critic-only minibatch steps after the KL stop.
    critic_only_minibatches,
    /// Learning rate of the actor network (the schedule's times the adaptive multiplier).
    actor_lr,
    /// Live heap (MiB; NaN without the counting allocator).
    heap_mib,
    /// Non-finite MPC solves since the previous update.
    mpc_non_finite,
    /// MPC gradients masked since the previous update.
    mpc_grads_masked,
    /// Time spent in the MPC layer during the update (s; 0 for AC-MLP).
    update_mpc_s,
    /// Floating-point operations of the networks' matrix products in the update (GFLOP).
    matmul_gflop,
    /// Those operations per second of the whole update (GFLOP/s): the network's rate, to read
    /// against the machine's float32 FMA peak.
    matmul_gflops,
}

/// CSV columns, one row per PPO update.
pub const CSV_COLUMNS: &[&str] = &TrainRow::COLUMNS;

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV header and the TensorBoard tags are a file format: renaming, adding or moving a
    /// field of `TrainRow` changes it, and resumed runs extend only a header they start with.
    #[test]
    fn csv_columns_are_the_train_row_fields_in_order() {
        assert_eq!(
            CSV_COLUMNS,
            [
                "update",
                "steps",
                "wall_s",
                "steps_per_s",
                "lr",
                "ep_return_mean100",
                "ep_length_mean100",
                "ep_gates_mean100",
                "ep_laps_mean100",
                "lap_time_mean100",
                "crash_fraction100",
                "episodes",
                "policy_loss",
                "value_loss",
                "approx_kl",
                "clip_fraction",
                "grad_norm",
                "explained_variance",
                "std",
                "rollout_s",
                "update_s",
                "rss_mib",
                "eval_return",
                "eval_gates",
                "eval_lap_time",
                "policy_minibatches",
                "critic_only_minibatches",
                "actor_lr",
                "heap_mib",
                "mpc_non_finite",
                "mpc_grads_masked",
                "update_mpc_s",
                "matmul_gflop",
                "matmul_gflops",
            ]
        );
    }
}
