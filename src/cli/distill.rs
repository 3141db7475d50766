//! `distill` and `distill-task`: BiStil's distillation trains on PyTorch, so it lives in the
//! Python package (the `[distill]` extra), not in this binary. The binary knows the two names
//! only to say in one line where they are.

use crate::error::Error;
use std::ffi::OsString;

/// Whatever follows `distill` / `distill-task` (taken as is, so any flags are accepted and
/// the answer is always the same line).
#[derive(Debug, clap::Args)]
pub struct PythonOnlyArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<OsString>,
}

/// The one-line answer for `clp-gpu NAME` (an error: the command is not in this binary).
pub fn not_here(name: &str) -> Error {
    Error::Argument(format!(
        "`clp-gpu {name}` trains on PyTorch and comes with the Python package: \
         pip install 'clp-gpu[distill]' (from a checkout: pip install '.[distill]'), \
         then run the `clp-gpu` command that pip installs"
    ))
}
