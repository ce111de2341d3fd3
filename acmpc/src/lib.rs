//! AC-MPC trainer (work in progress).
