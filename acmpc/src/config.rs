//! Training configuration: an embedded YAML default (`configs/default.yaml`), an optional user
//! file merged over it, and `--set key=value` overrides with dotted keys. Unknown keys are
//! errors that name the key.

use racing::env::EnvConfig;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

/// The embedded default configuration (SplitS, T = 2, K = 5, Table I PPO settings).
pub const DEFAULT_CONFIG: &str = include_str!("../configs/default.yaml");

/// Which actor the policy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// AC-MPC: the actor predicts the MPC cost; the action mean is the MPC's first control.
    Acmpc,
    /// AC-MLP baseline: the actor outputs the action mean directly.
    Mlp,
}

/// The AC-MPC actor's cost-map network (the ablation of issue 14: the paper's text against the
/// reference code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostMapNet {
    /// Three hidden layers with exact GELU (the reference code, `CostMapNet` of CA-AC-MPC).
    #[default]
    Gelu3,
    /// Two hidden ReLU layers (the paper's text: "a two-layer 512-unit ReLU MLP").
    Relu2,
}

/// Which implicit gradient the MPC layer returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientKind {
    /// Dynamics curvature dropped (as mpc.pytorch and CA-AC-MPC).
    GaussNewton,
    /// The exact derivative of the solution.
    Exact,
}

/// Where the MPC layer solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The CPU solver.
    Cpu,
    /// The CUDA solver (error without a GPU).
    Cuda,
    /// CUDA when a GPU and driver are present, else CPU.
    Auto,
}

/// The MPC layer's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpcConfig {
    /// Horizon T (the actor emits 28·T numbers).
    pub horizon: usize,
    /// iLQR iterations K.
    pub iters: usize,
    /// Gradient mode of the implicit backward pass.
    pub gradient: GradientKind,
    /// Solver backend.
    pub backend: BackendKind,
}

fn default_one() -> f64 {
    1.0
}

fn default_true() -> bool {
    true
}

/// PPO hyper-parameters (acmpc-reference.md §5.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    /// Environment steps to train for (all environments together).
    pub total_steps: u64,
    /// Steps per environment per rollout.
    pub n_steps: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Passes over each rollout.
    pub n_epochs: usize,
    /// Discount.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// PPO ratio clip.
    pub clip_range: f64,
    /// The update stops at the first minibatch whose approximate KL exceeds 1.5 × this.
    pub target_kl: Option<f64>,
    /// After the KL stop, keep training the critic alone on the remaining minibatches (true), or
    /// end the whole update as SB3 does (false). With the MPC actor one Adam step can move the
    /// policy past the KL limit; under SB3's rule 30 updates in a row then took a single
    /// minibatch step, starving the critic as well (results/README.md).
    #[serde(default = "default_true")]
    pub critic_after_kl_stop: bool,
    /// Value-loss coefficient.
    pub vf_coef: f64,
    /// Entropy coefficient.
    pub ent_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Initial learning rate.
    pub lr_init: f64,
    /// Initial multiplier of the learning rate for the actor network (`actor.*`; the log-std
    /// and the critic keep the full rate). 1 = Table I.
    #[serde(default = "default_one")]
    pub actor_lr_scale: f64,
    /// Adapt that multiplier after every update: halve it when the KL stop fired, grow it by
    /// 1.25 (up to 1) when the update's KL stayed under target_kl / 2. The MPC actor's cost map
    /// is scaled by 1e5, and one Adam step at the full rate moved the action mean by up to 6 σ
    /// (KL 0.56 after one step); false keeps the multiplier fixed (Table I with 1).
    #[serde(default = "default_true")]
    pub adaptive_actor_lr: bool,
    /// Final learning rate.
    pub lr_final: f64,
    /// Fraction of training with the flat initial rate before the linear decay.
    pub lr_decay_start: f64,
    /// Adam ε.
    pub adam_eps: f64,
}

/// Network sizes and initial exploration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Hidden width of every layer.
    pub hidden: usize,
    /// Initial log standard deviation of the Gaussian (None: −1.2 for acmpc, −0.82 for mlp).
    pub log_std_init: Option<f64>,
    /// The AC-MPC actor's cost-map network (absent in older configs: the reference's GELU stack).
    #[serde(default)]
    pub cost_map: CostMapNet,
}

/// Logging, checkpoint and evaluation cadence (in environment steps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Run a deterministic evaluation every this many steps (0: never).
    pub eval_every: u64,
    /// Episodes per periodic evaluation.
    pub eval_episodes: usize,
    /// Regular checkpoints kept on disk: the last this many (older ones are deleted after each
    /// new one is written); `best` is kept besides. May change on `--resume`.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
}

fn default_keep_last() -> usize {
    3
}

/// The whole training configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Actor kind.
    pub policy: PolicyKind,
    /// Seed of networks, sampling and environments (env i gets seed + i).
    pub seed: u64,
    /// Shipped track name or YAML path.
    pub track: String,
    /// Parallel environments.
    pub n_envs: usize,
    /// Environment settings (defaults: the AC-MPC training config).
    pub env: EnvConfig,
    /// MPC layer.
    pub mpc: MpcConfig,
    /// PPO.
    pub ppo: PpoConfig,
    /// Networks.
    pub net: NetConfig,
    /// Logging cadence.
    pub log: LogConfig,
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sets `a.b.c = value` (value parsed as YAML, so numbers, booleans and lists work).
fn set_dotted(root: &mut Value, key: &str, value: &str) -> Result<(), ConfigError> {
    let parsed: Value = serde_yaml_ng::from_str(value)
        .map_err(|e| ConfigError(format!("--set {key}={value}: the value is not valid YAML: {e}")))?;
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(ConfigError(format!("--set {key}: empty key component")));
        }
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| ConfigError(format!("--set {key}: `{}` is not a section", parts[..i].join("."))))?;
        let k = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, parsed);
            return Ok(());
        }
        if !map.contains_key(&k) {
            map.insert(k.clone(), Value::Mapping(Default::default()));
        }
        node = map.get_mut(&k).expect("inserted above");
    }
    Ok(())
}

impl TrainConfig {
    /// Builds a configuration: the embedded default, then `file_text` (if any) merged over it,
    /// then each `key=value` override in order.
    pub fn build(file_text: Option<&str>, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let mut root: Value = serde_yaml_ng::from_str(DEFAULT_CONFIG).expect("embedded default config parses");
        if let Some(text) = file_text {
            let user: Value =
                serde_yaml_ng::from_str(text).map_err(|e| ConfigError(format!("config file is not valid YAML: {e}")))?;
            if !user.is_mapping() && !user.is_null() {
                return Err(ConfigError("config file: the top level must be a mapping".into()));
            }
            if !user.is_null() {
                merge(&mut root, user);
            }
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("--set `{o}`: expected key=value")))?;
            set_dotted(&mut root, k.trim(), v.trim())?;
        }
        let cfg: TrainConfig = serde_path_to_error::deserialize(root).map_err(|e| {
            let path = e.path().to_string();
            ConfigError(format!("`{path}`: {}", e.into_inner()))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.n_envs == 0 {
            return bad("n_envs must be at least 1");
        }
        if self.mpc.horizon == 0 || self.mpc.iters == 0 {
            return bad("mpc.horizon and mpc.iters must be at least 1");
        }
        let p = &self.ppo;
        if p.n_steps == 0 || p.batch_size == 0 || p.n_epochs == 0 {
            return bad("ppo.n_steps, ppo.batch_size and ppo.n_epochs must be at least 1");
        }
        if p.batch_size > p.n_steps * self.n_envs {
            return Err(ConfigError(format!(
                "ppo.batch_size = {} exceeds the rollout size n_steps × n_envs = {}",
                p.batch_size,
                p.n_steps * self.n_envs
            )));
        }
        if !(0.0..=1.0).contains(&p.gamma) || !(0.0..=1.0).contains(&p.gae_lambda) {
            return bad("ppo.gamma and ppo.gae_lambda must lie in [0, 1]");
        }
        if !(p.actor_lr_scale > 0.0 && p.actor_lr_scale <= 1e3) {
            return bad("ppo.actor_lr_scale must be positive and finite");
        }
        if !(p.lr_init > 0.0 && p.lr_final > 0.0 && (0.0..1.0).contains(&p.lr_decay_start)) {
            return bad("ppo.lr_init and ppo.lr_final must be positive and ppo.lr_decay_start in [0, 1)");
        }
        if self.log.keep_last == 0 {
            return bad("log.keep_last must be at least 1 (the checkpoint a resume starts from)");
        }
        if self.net.hidden == 0 {
            return bad("net.hidden must be at least 1");
        }
        Ok(())
    }

    /// The initial log standard deviation (per-policy default of the reference configs).
    pub fn log_std_init(&self) -> f64 {
        self.net.log_std_init.unwrap_or(match self.policy {
            PolicyKind::Acmpc => -1.2,
            PolicyKind::Mlp => -0.82,
        })
    }

    /// Learning rate at `steps` of training (§5.2: flat, then linear to `lr_final`).
    pub fn learning_rate(&self, steps: u64) -> f64 {
        let p = &self.ppo;
        let elapsed = (steps as f64 / p.total_steps.max(1) as f64).clamp(0.0, 1.0);
        let frac = if elapsed <= p.lr_decay_start {
            1.0
        } else {
            (1.0 - (elapsed - p.lr_decay_start) / (1.0 - p.lr_decay_start)).clamp(0.0, 1.0)
        };
        p.lr_final + (p.lr_init - p.lr_final) * frac
    }

    /// YAML text of this configuration (saved next to every checkpoint).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_file_restores_table_one_and_the_default_differs_only_by_three_training_aids() {
        let paper = TrainConfig::build(Some(include_str!("../configs/paper-table1.yaml")), &[]).unwrap();
        assert_eq!((paper.ppo.gamma, paper.env.random_gate_start_prob), (0.99, 0.0));
        assert_eq!(paper.env, racing::env::EnvConfig::default());
        let c = TrainConfig::build(None, &[]).unwrap();
        assert_eq!((c.ppo.gamma, c.env.random_gate_start_prob, c.log_std_init()), (0.998, 0.5, -0.82));
        let restored = TrainConfig::build(
            None,
            &["ppo.gamma=0.99".into(), "env.random_gate_start_prob=0".into(), "net.log_std_init=null".into()],
        )
        .unwrap();
        assert_eq!(restored, paper);
        let c = paper;
        assert_eq!(c.policy, PolicyKind::Acmpc);
        assert_eq!((c.mpc.horizon, c.mpc.iters), (2, 5));
        assert_eq!((c.ppo.n_steps, c.ppo.batch_size, c.ppo.n_epochs), (256, 2048, 10));
        assert_eq!((c.ppo.gamma, c.ppo.gae_lambda, c.ppo.clip_range), (0.99, 0.95, 0.2));
        assert_eq!(c.track, "zurich");
        assert_eq!(c.env.max_steps, 2500);
        assert_eq!(c.log_std_init(), -1.2);
        let paper_mlp = TrainConfig::build(Some(include_str!("../configs/paper-table1.yaml")), &["policy=mlp".into()]).unwrap();
        assert_eq!(paper_mlp.log_std_init(), -0.82);
        // Round trip through the saved YAML.
        assert_eq!(TrainConfig::build(Some(&c.to_yaml()), &[]).unwrap(), c);
    }

    #[test]
    fn overrides_and_errors_name_the_key() {
        let c = TrainConfig::build(None, &["ppo.total_steps=1000".into(), "policy=mlp".into(), "n_envs=4".into(), "ppo.batch_size=64".into()]).unwrap();
        assert_eq!(c.ppo.total_steps, 1000);
        assert_eq!(c.policy, PolicyKind::Mlp);
        assert_eq!(c.log_std_init(), -0.82);
        assert_eq!(c.net.cost_map, CostMapNet::Gelu3);
        let c = TrainConfig::build(None, &["net.cost_map=relu2".into()]).unwrap();
        assert_eq!(c.net.cost_map, CostMapNet::Relu2);
        assert_eq!(TrainConfig::build(Some(&c.to_yaml()), &[]).unwrap(), c);
        let e = TrainConfig::build(None, &["net.cost_map=relu3".into()]).unwrap_err().to_string();
        assert!(e.contains("cost_map"), "{e}");
        let e = TrainConfig::build(None, &["ppo.clip=0.1".into()]).unwrap_err().to_string();
        assert!(e.contains("clip"), "{e}");
        let e = TrainConfig::build(None, &["n_envs=2".into()]).unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
        let e = TrainConfig::build(Some("mpc: {horizon: x}"), &[]).unwrap_err().to_string();
        assert!(e.contains("horizon"), "{e}");
    }

    #[test]
    fn learning_rate_schedule_is_flat_then_linear() {
        let c = TrainConfig::build(None, &["ppo.total_steps=100".into()]).unwrap();
        assert_eq!(c.learning_rate(0), 3e-4);
        assert_eq!(c.learning_rate(30), 3e-4);
        assert!((c.learning_rate(65) - (3e-5 + 2.7e-4 * 0.5)).abs() < 1e-15);
        assert!((c.learning_rate(100) - 3e-5).abs() < 1e-15);
    }
}
