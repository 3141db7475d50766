//! The subcommands as library functions: each takes typed options, runs its stages and returns
//! a report; printing lives in [`crate::cli`].

pub mod apply;
pub mod bench;
pub mod evaluate;
pub mod inspect;
#[cfg(feature = "perplexity")]
pub mod perplexity;
pub mod shrink;
pub mod trim;
