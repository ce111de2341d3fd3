//! The kernel templates under `templates/`, embedded in the library (`include_str!`) with their file names.

/// File name of the single-launch forward-solve template under `templates/`.
pub const SOLVE_TEMPLATE_NAME: &str = "ilqr_solve.cu.tera";
/// The single-launch forward-solve template (tera 2 syntax).
pub const SOLVE_TEMPLATE: &str = include_str!("../../../templates/ilqr_solve.cu.tera");
/// File name of the backward-pass template under `templates/`.
pub const BACKWARD_TEMPLATE_NAME: &str = "ilqr_backward.cu.tera";
/// The implicit-differentiation backward-pass template (tera 2 syntax).
pub const BACKWARD_TEMPLATE: &str = include_str!("../../../templates/ilqr_backward.cu.tera");
/// File name of the shared device helpers under `templates/` (included by other templates).
pub const COMMON_TEMPLATE_NAME: &str = "common.cu.tera";
/// Shared device helpers (tera 2 syntax), `{% include %}`d by kernel templates.
pub const COMMON_TEMPLATE: &str = include_str!("../../../templates/common.cu.tera");
/// File name of the iLQR building blocks under `templates/` (included by the solve kernels).
pub const CORE_TEMPLATE_NAME: &str = "ilqr_core.cu.tera";
/// The iLQR building blocks (box QP, rollouts, Riccati pass), templates over the workspace type.
pub const CORE_TEMPLATE: &str = include_str!("../../../templates/ilqr_core.cu.tera");
/// File name of the warp-per-problem solve template under `templates/`.
pub const WARP_TEMPLATE_NAME: &str = "ilqr_solve_warp.cu.tera";
/// The warp-per-problem single-launch solve template (tera 2 syntax).
pub const WARP_TEMPLATE: &str = include_str!("../../../templates/ilqr_solve_warp.cu.tera");
/// File names and texts of the three-stage layout's templates (stage 1, 2, 3) under `templates/`.
pub const STAGE_TEMPLATES: [(&str, &str); 3] = [
    ("ilqr_stage1_rollout.cu.tera", include_str!("../../../templates/ilqr_stage1_rollout.cu.tera")),
    ("ilqr_stage2_riccati.cu.tera", include_str!("../../../templates/ilqr_stage2_riccati.cu.tera")),
    ("ilqr_stage3_line_search.cu.tera", include_str!("../../../templates/ilqr_stage3_line_search.cu.tera")),
];
/// File name of the three-stage layout's shared part (constants, state layout) under `templates/`.
pub const STAGED_TEMPLATE_NAME: &str = "ilqr_staged.cu.tera";
/// The three-stage layout's shared part (tera 2 syntax).
pub const STAGED_TEMPLATE: &str = include_str!("../../../templates/ilqr_staged.cu.tera");
/// File name of the host compatibility header under `templates/`.
pub const HOST_COMPAT_NAME: &str = "host_compat.h";
/// The host compatibility header that lets a host C++ compiler build the rendered kernels.
pub const HOST_COMPAT_H: &str = include_str!("../../../templates/host_compat.h");
