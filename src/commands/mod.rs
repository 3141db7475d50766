//! The subcommands as library functions: each takes typed options, runs its stages and returns
//! a report; printing lives in [`crate::cli`]. Shared by them: [`timer`] (seconds per stage
//! for the reports) and [`column_stats`] (column means and deviations of a row set, streamed in chunks).

pub mod apply;
pub mod bench;
pub mod column_stats;
pub mod evaluate;
pub mod extend;
pub mod inspect;
#[cfg(feature = "perplexity")]
pub mod perplexity;
pub mod shrink;
pub mod timer;
pub mod trim;
