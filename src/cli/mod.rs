//! One module per subcommand.

pub mod bench;
pub mod codegen;
pub mod eval;
pub mod imitate;
pub mod solve;
pub mod train;
