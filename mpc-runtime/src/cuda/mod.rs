//! CUDA tooling without a GPU: run-time compilation with NVRTC and register reports from `ptxas`.
