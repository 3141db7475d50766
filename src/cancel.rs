//! Cooperative cancellation: one process-wide flag that front ends set ([`request`]) and the
//! engine checks ([`check`]) between units of work: before each tile or chunk of rows is
//! gathered ([`crate::rows::RowSet::gather`]), before each tensor is written
//! ([`crate::model::writer::write_shard`]), between row copies, corpus batches and perplexity
//! windows, and once more before a staging directory becomes OUT
//! ([`crate::model::writer::Staging::commit`]). A cancelled run returns [`Error::Cancelled`]
//! and unwinds normally, so its staging directory is dropped (removed) and nothing is left at
//! OUT.
//!
//! The CLI sets the flag from its Ctrl-C / SIGTERM handler; the Python module sets it when
//! Python raises `KeyboardInterrupt` (or a progress callback raises) and clears it when its
//! last running call has returned. The flag is never cleared by the engine itself.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every run in progress to stop at its next check.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Forgets a request (front ends call this once no run is left in progress).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn is_requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Error::Cancelled)` once a stop was requested.
pub fn check() -> Result<()> {
    if is_requested() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}
