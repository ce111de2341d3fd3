//! The training loop of `mpc train`: rollouts on the batched environment, PPO updates, logs
//! (CSV + TensorBoard), periodic deterministic evaluation, atomic checkpoints and `--resume`.

use crate::checkpoint::{self, EpisodeRecord, TrainState};
use crate::config::{GradientKind, TrainConfig};
use crate::evaluate::{Agent, build_policy, run_episode};
use crate::logging::{CsvLog, TensorBoardWriter};
use crate::mpc_layer::{HOVER_THRUST, NX};
use crate::normalize::ObsNormalizer;
use crate::optim::Adam;
use crate::policy::{ActorCritic, FEATURES, N_FEATURES};
use crate::ppo::{self, RolloutBuffer, UpdateStats};
use crate::run_dir::resume;
pub use crate::run_dir::{RunOptions, RunSummary, plot_run};
pub use crate::train_row::CSV_COLUMNS;
use crate::train_row::TrainRow;
use indicatif::{ProgressBar, ProgressStyle};
use mpc_runtime::solver::GradientMode;
use racing::env::{OBS_DIM, VecEnv};
use racing::track::Track;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

/// The solver's gradient mode for a configuration.
pub fn gradient_mode(cfg: &TrainConfig) -> GradientMode {
    match cfg.mpc.gradient {
        GradientKind::GaussNewton => GradientMode::GaussNewton,
        GradientKind::Exact => GradientMode::Exact,
    }
}

/// Resident memory of this process in MiB (Linux `/proc/self/statm`; NaN elsewhere).
pub fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<f64>().ok())
        })
        .map(|pages| pages * 4096.0 / (1024.0 * 1024.0))
        .unwrap_or(f64::NAN)
}

/// Append a finished episode to the rolling window of the last 100 (`TrainState::episode_window`,
/// which a checkpoint carries across a resume).
fn push_episode(items: &mut VecDeque<EpisodeRecord>, s: &racing::env::EpisodeStats) {
    use racing::env::Event;
    let crash = matches!(s.end, Some(Event::Ground) | Some(Event::Miss));
    // Best flying lap, else the standing-start lap (after a gate spawn every timed lap flies).
    let standing = usize::from(!s.partial_first_lap);
    let lap = s
        .lap_times
        .iter()
        .skip(standing)
        .cloned()
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
        .or(s.lap_times.first().cloned());
    items.push_back(EpisodeRecord {
        ret: s.ret,
        length: s.length as f64,
        gates: s.gates_passed as f64,
        laps: s.laps as f64,
        lap,
        crash,
    });
    while items.len() > 100 {
        items.pop_front();
    }
}

/// Mean of `f` over the window's episodes where it is defined (NaN when none).
fn mean(items: &VecDeque<EpisodeRecord>, f: impl Fn(&EpisodeRecord) -> Option<f64>) -> f64 {
    let (sum, n) = items.iter().filter_map(f).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Scores of one periodic evaluation, all NaN when none was due.
struct EvalScores {
    /// Mean return over the episodes.
    ret: f64,
    /// Mean number of gates passed.
    gates: f64,
    /// Best lap time (s).
    lap_time: f64,
}

/// What one PPO update measured besides the counters of [`TrainState`].
struct UpdateReport {
    /// Learning rate of the schedule.
    lr: f64,
    /// Learning rate of the actor network.
    actor_lr: f64,
    /// PPO statistics.
    stats: UpdateStats,
    /// Time spent collecting the rollout (s).
    rollout_s: f64,
    /// Time spent in the PPO update (s).
    update_s: f64,
    /// Resident memory after the update (MiB).
    rss: f64,
    /// The evaluation, if one was due.
    eval: EvalScores,
}

/// A training run in progress: networks, environments, logs and schedule.
struct Run<'a> {
    cfg: &'a TrainConfig,
    opts: &'a RunOptions,
    track: Track,
    ckpt_root: PathBuf,
    policy: ActorCritic,
    opt: Adam,
    normalizer: ObsNormalizer,
    state: TrainState,
    csv: CsvLog,
    tb: TensorBoardWriter,
    venv: VecEnv,
    /// Action noise and minibatch order.
    rng: StdRng,
    /// Warm start of every environment's next MPC solve, N×4.
    warm: Vec<f64>,
    /// Current observations of the environments.
    obs: Vec<[f32; OBS_DIM]>,
    buf: RolloutBuffer,
    /// Normalised features of `obs`, N×`N_FEATURES`.
    feats: Vec<f32>,
    first_mean_return: f64,
    rss_first: f64,
    /// Start of this segment (a resumed run starts a new one).
    started: Instant,
    wall_before: f64,
    steps_before: u64,
    next_ckpt: u64,
    next_eval: u64,
    bar: ProgressBar,
}

/// Trains a policy as `cfg` says, writing into `opts.out`.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    if std::env::var_os("MPC_KEEP_SUBNORMALS").is_none() {
        crate::fpu::flush_denormals_for_training();
    }
    let mut run = Run::start(cfg, opts)?;
    while run.state.steps < opts.end_steps(cfg) {
        run.iteration()?;
    }
    run.finish()
}

/// The progress bar over `ppo.total_steps`, at `steps`; hidden unless `show`.
fn progress_bar(cfg: &TrainConfig, show: bool, steps: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(cfg.ppo.total_steps);
    b.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
        )
        .expect("progress template")
        .progress_chars("=> "),
    );
    b.set_position(steps);
    b
}

/// An action sampled around the policy's `mean` with standard deviations `std` (four draws
/// from `rng`) and its Gaussian log-probability.
fn sample_action(mean: &[f64; 4], std: &[f64; 4], rng: &mut StdRng) -> ([f32; 4], f64) {
    let mut a = [0f32; 4];
    let mut lp = 0.0;
    for k in 0..4 {
        let eps: f64 = StandardNormal.sample(rng);
        let ak = mean[k] + std[k] * eps;
        a[k] = ak as f32;
        let d = (a[k] as f64 - mean[k]) / std[k];
        lp += -0.5 * d * d - std[k].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
    }
    (a, lp)
}

impl<'a> Run<'a> {
    /// Builds the networks (from the last checkpoint with `--resume`), writes `config.yaml`,
    /// opens the logs and seeds the environments.
    fn start(cfg: &'a TrainConfig, opts: &'a RunOptions) -> anyhow::Result<Self> {
        let track = Track::resolve(&cfg.track)?;
        let ckpt_root = opts.out.join("checkpoints");
        std::fs::create_dir_all(&opts.out)?;
        let (policy, note) =
            build_policy(cfg, cfg.n_envs.max(cfg.ppo.batch_size)).map_err(anyhow::Error::msg)?;
        eprintln!("mpc train: {note}");
        let mut opt = Adam::new(
            policy.params.vars.clone(),
            cfg.ppo.lr_init,
            cfg.ppo.adam_eps,
        )?;
        let (mut normalizer, state) = if opts.resume {
            resume(cfg, &ckpt_root, &policy, &mut opt)?
        } else {
            let state = TrainState {
                actor_lr_scale: cfg.ppo.actor_lr_scale,
                ..TrainState::default()
            };
            (ObsNormalizer::new(OBS_DIM), state)
        };
        std::fs::write(opts.out.join("config.yaml"), cfg.to_yaml())?;
        if opts.resume {
            crate::logging::truncate_after(&opts.out.join("train.csv"), state.updates)?;
        }
        let csv = CsvLog::open(&opts.out.join("train.csv"), CSV_COLUMNS)?;
        let tb = TensorBoardWriter::create(&opts.out.join("tb"))?;

        let n = cfg.n_envs;
        // Environments are re-seeded per segment so that a resumed run does not replay the same
        // random spawns (the shipped tracks spawn deterministically anyway).
        let venv = VecEnv::new(
            track.clone(),
            cfg.env.clone(),
            n,
            cfg.seed.wrapping_add(state.updates.wrapping_mul(7919)),
        );
        let rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed ^ state.updates);
        let warm: Vec<f64> = (0..n).flat_map(|_| [HOVER_THRUST, 0.0, 0.0, 0.0]).collect();
        let obs = venv.observations();
        normalizer.update(&obs);
        let buf = RolloutBuffer::new(n);
        let started = Instant::now();
        let ckpt_every = cfg.log.checkpoint_every.max(1);
        // Never with `log.eval_every = 0` (the final evaluation still runs).
        let next_eval = match state.steps.checked_div(cfg.log.eval_every) {
            Some(k) => (k + 1) * cfg.log.eval_every,
            None => u64::MAX,
        };
        Ok(Self {
            cfg,
            opts,
            track,
            ckpt_root,
            policy,
            opt,
            normalizer,
            csv,
            tb,
            venv,
            rng,
            warm,
            obs,
            buf,
            feats: vec![0f32; n * N_FEATURES],
            first_mean_return: f64::NAN,
            rss_first: f64::NAN,
            started,
            wall_before: state.wall_seconds,
            steps_before: state.steps,
            next_ckpt: (state.steps / ckpt_every + 1) * ckpt_every,
            next_eval,
            bar: progress_bar(cfg, opts.progress, state.steps),
            state,
        })
    }

    /// One PPO update: a rollout, the update, then the evaluation, the log row and the
    /// checkpoint that are due.
    fn iteration(&mut self) -> anyhow::Result<()> {
        let cfg = self.cfg;
        let lr = cfg.learning_rate(self.state.steps);
        self.opt.lr = lr;
        self.opt.scale_lr("actor.", self.state.actor_lr_scale);
        let rollout_s = self.collect_rollout()?;
        let t_upd = Instant::now();
        let stats = ppo::update(
            &self.policy,
            &mut self.opt,
            &self.buf,
            &cfg.ppo,
            &mut self.rng,
        )?;
        let update_s = t_upd.elapsed().as_secs_f64();
        let actor_lr = lr * self.state.actor_lr_scale;
        if cfg.ppo.adaptive_actor_lr {
            self.state.actor_lr_scale =
                ppo::adapt_actor_lr_scale(self.state.actor_lr_scale, &stats, cfg.ppo.target_kl);
        }
        self.state.updates += 1;
        self.state.adam_steps = self.opt.step;
        self.state.wall_seconds = self.wall_before + self.started.elapsed().as_secs_f64();
        let rss = resident_mib();
        if self.state.updates == 1 || self.rss_first.is_nan() {
            self.rss_first = rss;
        }
        let eval = self.evaluate_if_due()?;
        self.log_update(&UpdateReport {
            lr,
            actor_lr,
            stats,
            rollout_s,
            update_s,
            rss,
            eval,
        })?;
        self.checkpoint_if_due()
    }

    /// Steps every environment `ppo.n_steps` times with sampled actions, filling the rollout
    /// buffer, then computes its advantages; returns the time taken (s).
    fn collect_rollout(&mut self) -> anyhow::Result<f64> {
        let cfg = self.cfg;
        let n = cfg.n_envs;
        self.buf.clear();
        let t_roll = Instant::now();
        let mut first_rollout_returns = Vec::new();
        for _ in 0..cfg.ppo.n_steps {
            self.rollout_step(&mut first_rollout_returns)?;
        }
        if self.state.updates == 0 && !first_rollout_returns.is_empty() {
            self.first_mean_return =
                first_rollout_returns.iter().sum::<f64>() / first_rollout_returns.len() as f64;
        }
        self.normalize_features();
        let features = candle_core::Tensor::from_slice(
            &self.feats,
            (n, N_FEATURES),
            &candle_core::Device::Cpu,
        )?;
        let last_values: Vec<f32> = self.policy.value(&features)?.to_vec1()?;
        self.buf
            .finish(&last_values, cfg.ppo.gamma, cfg.ppo.gae_lambda);
        Ok(t_roll.elapsed().as_secs_f64())
    }

    /// Normalises the current observations into `feats`.
    fn normalize_features(&mut self) {
        for (i, o) in self.obs.iter().enumerate() {
            let out = &mut self.feats[i * N_FEATURES..(i + 1) * N_FEATURES];
            self.normalizer.normalize_into(o, FEATURES, out);
        }
    }

    /// One step of every environment: actions sampled around the policy's means, the
    /// transitions recorded, finished episodes counted (their returns added to
    /// `first_rollout_returns` during the first update).
    fn rollout_step(&mut self, first_rollout_returns: &mut Vec<f64>) -> anyhow::Result<()> {
        let n = self.cfg.n_envs;
        self.normalize_features();
        let states: Vec<f64> = self
            .venv
            .states()
            .iter()
            .flat_map(|s| s.iter().cloned())
            .collect();
        let acting = self.policy.act(&self.feats, &states, &self.warm)?;
        let std = self.policy.std()?;
        let mut actions = Vec::with_capacity(n);
        let buf = &mut self.buf;
        for i in 0..n {
            let (a, lp) = sample_action(&acting.mean[i], &std, &mut self.rng);
            buf.features
                .extend_from_slice(&self.feats[i * N_FEATURES..(i + 1) * N_FEATURES]);
            buf.states.extend_from_slice(&states[i * NX..(i + 1) * NX]);
            buf.warm.extend_from_slice(&self.warm[i * 4..(i + 1) * 4]);
            buf.actions.extend_from_slice(&a);
            buf.log_probs.push(lp as f32);
            buf.values.push(acting.value[i]);
            actions.push(a.map(|v| v.clamp(-1.0, 1.0)));
        }
        // The next warm start is this solve's first control (not reset at episode ends, §4.5).
        for i in 0..n {
            self.warm[i * 4..(i + 1) * 4].copy_from_slice(&acting.control[i]);
        }
        let step = self.venv.step(&actions);
        self.buf.rewards.extend_from_slice(&step.rewards);
        self.buf.dones.extend_from_slice(&step.dones);
        self.buf.len += 1;
        for s in &step.finished {
            push_episode(&mut self.state.episode_window, s);
            self.state.episodes += 1;
            if self.state.updates == 0 {
                first_rollout_returns.push(s.ret);
            }
        }
        self.obs = self.venv.observations();
        self.normalizer.update(&self.obs);
        self.state.steps += n as u64;
        Ok(())
    }

    /// The deterministic evaluation when one is due (every `log.eval_every` steps and at the
    /// end); a new best return saves the `best` checkpoint.
    fn evaluate_if_due(&mut self) -> anyhow::Result<EvalScores> {
        let cfg = self.cfg;
        if self.state.steps < self.next_eval && self.state.steps < self.opts.end_steps(cfg) {
            return Ok(EvalScores {
                ret: f64::NAN,
                gates: f64::NAN,
                lap_time: f64::NAN,
            });
        }
        self.next_eval = self.next_eval.saturating_add(cfg.log.eval_every.max(1));
        let agent = Agent {
            policy: self.policy.clone(),
            normalizer: self.normalizer.clone(),
            config: cfg.clone(),
        };
        let env = crate::evaluate::eval_env_config(&cfg.env, 2, 3000);
        let mut rets = Vec::new();
        for e in 0..cfg.log.eval_episodes.max(1) {
            let r = run_episode(&agent, &self.track, &env, cfg.seed + 1000 + e as u64)
                .map_err(anyhow::Error::msg)?;
            rets.push(r);
        }
        let n = rets.len() as f64;
        let scores = EvalScores {
            ret: rets.iter().map(|r| r.ret).sum::<f64>() / n,
            gates: rets.iter().map(|r| r.gates_passed as f64).sum::<f64>() / n,
            lap_time: rets
                .iter()
                .flat_map(|r| r.lap_times.iter().cloned())
                .fold(f64::NAN, f64::min),
        };
        if self.state.best_eval_return.is_none_or(|b| scores.ret > b) {
            self.state.best_eval_return = Some(scores.ret);
            // `best` never becomes `latest` (the resume point is the last regular one).
            let (policy, opt, normalizer) = (&self.policy, &self.opt, &self.normalizer);
            checkpoint::save(
                &self.ckpt_root,
                "best",
                policy,
                opt,
                normalizer,
                cfg,
                &self.state,
                false,
            )?;
        }
        Ok(scores)
    }

    /// Writes the update's row to `train.csv` and TensorBoard and reports progress.
    fn log_update(&mut self, r: &UpdateReport) -> anyhow::Result<()> {
        let sps =
            (self.state.steps - self.steps_before) as f64 / self.started.elapsed().as_secs_f64();
        // Non-finite MPC solves and masked gradients of this update's rollout, PPO epochs and
        // evaluation: counted and logged, never fed to the optimiser as NaN.
        let health = self.policy.mpc_health();
        if health.non_finite_solves + health.masked_gradients + health.replaced_controls > 0 {
            eprintln!(
                "update {}: MPC layer: {} non-finite solves, {} masked gradients, {} replaced controls",
                self.state.updates,
                health.non_finite_solves,
                health.masked_gradients,
                health.replaced_controls
            );
        }
        let (state, st) = (&self.state, &r.stats);
        let window = &state.episode_window;
        let row = TrainRow {
            update: state.updates as f64,
            steps: state.steps as f64,
            wall_s: state.wall_seconds,
            steps_per_s: sps,
            lr: r.lr,
            ep_return_mean100: mean(window, |e| Some(e.ret)),
            ep_length_mean100: mean(window, |e| Some(e.length)),
            ep_gates_mean100: mean(window, |e| Some(e.gates)),
            ep_laps_mean100: mean(window, |e| Some(e.laps)),
            lap_time_mean100: mean(window, |e| e.lap),
            crash_fraction100: mean(window, |e| Some(if e.crash { 1.0 } else { 0.0 })),
            episodes: state.episodes as f64,
            policy_loss: st.policy_loss,
            value_loss: st.value_loss,
            approx_kl: st.approx_kl,
            clip_fraction: st.clip_fraction,
            grad_norm: st.grad_norm,
            explained_variance: st.explained_variance,
            std: st.std,
            rollout_s: r.rollout_s,
            update_s: r.update_s,
            rss_mib: r.rss,
            eval_return: r.eval.ret,
            eval_gates: r.eval.gates,
            eval_lap_time: r.eval.lap_time,
            policy_minibatches: st.minibatches as f64,
            critic_only_minibatches: st.critic_only_minibatches as f64,
            actor_lr: r.actor_lr,
            heap_mib: crate::heap::live_heap_mib().unwrap_or(f64::NAN),
            mpc_non_finite: health.non_finite_solves as f64,
            mpc_grads_masked: health.masked_gradients as f64,
            update_mpc_s: st.mpc_seconds,
            matmul_gflop: st.matmul_flop * 1e-9,
            matmul_gflops: st.matmul_flop * 1e-9 / r.update_s,
        };
        let values = row.values();
        self.csv.row(&values)?;
        // Everything but the update number, the step (TensorBoard's own axis) and the wall time.
        let tags: Vec<(&str, f64)> = TrainRow::COLUMNS
            .iter()
            .zip(values.iter())
            .skip(3)
            .map(|(k, v)| (*k, *v))
            .collect();
        self.tb.scalars(self.state.steps, &tags)?;
        self.report_progress(r, sps);
        Ok(())
    }

    /// Moves the progress bar and sets its message, or prints one line on stderr when there is
    /// no bar.
    fn report_progress(&self, r: &UpdateReport, sps: f64) {
        let (state, st) = (&self.state, &r.stats);
        let window = &state.episode_window;
        self.bar
            .set_position(state.steps.min(self.cfg.ppo.total_steps));
        self.bar.set_message(format!(
            "ret {:.1} gates {:.1} lap {} kl {:.3} rss {:.0} MiB",
            mean(window, |e| Some(e.ret)),
            mean(window, |e| Some(e.gates)),
            {
                let l = mean(window, |e| e.lap);
                if l.is_nan() {
                    "-".to_string()
                } else {
                    format!("{l:.2}s")
                }
            },
            st.approx_kl,
            r.rss
        ));
        if !self.opts.progress {
            eprintln!(
                "update {} steps {} sps {:.0} ret {:.2} gates {:.2} kl {:.4} mb {}+{} actor lr {:.1e} ev {:.2} std {:.3} roll {:.1}s upd {:.1}s rss {:.0}MiB",
                state.updates,
                state.steps,
                sps,
                mean(window, |e| Some(e.ret)),
                mean(window, |e| Some(e.gates)),
                st.approx_kl,
                st.minibatches,
                st.critic_only_minibatches,
                r.actor_lr,
                st.explained_variance,
                st.std,
                r.rollout_s,
                r.update_s,
                r.rss
            );
        }
    }

    /// A regular checkpoint when one is due (every `log.checkpoint_every` steps and at the
    /// end), keeping the last `log.keep_last`.
    fn checkpoint_if_due(&mut self) -> anyhow::Result<()> {
        let cfg = self.cfg;
        if self.state.steps < self.next_ckpt && self.state.steps < self.opts.end_steps(cfg) {
            return Ok(());
        }
        self.next_ckpt = self
            .next_ckpt
            .saturating_add(cfg.log.checkpoint_every.max(1));
        let name = format!("step_{:09}", self.state.steps);
        let root = &self.ckpt_root;
        // Make room first, so that at most keep_last regular checkpoints exist at any moment
        // (`latest` is never deleted, so keep_last = 1 briefly holds two).
        checkpoint::prune(root, cfg.log.keep_last.saturating_sub(1))?;
        let (policy, opt, normalizer) = (&self.policy, &self.opt, &self.normalizer);
        checkpoint::save(root, &name, policy, opt, normalizer, cfg, &self.state, true)?;
        checkpoint::prune(root, cfg.log.keep_last)?;
        Ok(())
    }

    /// Ends the progress bar and writes `summary.json`.
    fn finish(self) -> anyhow::Result<RunSummary> {
        self.bar.finish();
        let ckpt = checkpoint::resolve(&self.ckpt_root).unwrap_or_else(|_| self.ckpt_root.clone());
        let state = &self.state;
        let summary = RunSummary {
            steps: state.steps,
            wall_seconds: state.wall_seconds,
            steps_per_second: (state.steps - self.steps_before) as f64
                / self.started.elapsed().as_secs_f64(),
            mean_return: mean(&self.state.episode_window, |e| Some(e.ret)),
            first_mean_return: self.first_mean_return,
            rss_mib: (self.rss_first, resident_mib()),
            checkpoint: ckpt,
        };
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(self.opts.out.join("summary.json"), json)?;
        Ok(summary)
    }
}
