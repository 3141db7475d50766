//! One command line run for Python: the engine works on a worker thread while the calling
//! thread, with the GIL released, waits in short slices and calls `check_signals` between
//! them (Python runs its signal handlers there, so Ctrl-C becomes `KeyboardInterrupt`). On
//! `KeyboardInterrupt`, or when a progress callback raises, the engine is asked to stop
//! ([`clp_gpu::cancel`]); the call waits for it to clean up (nothing is left at OUT) and then
//! raises. The module installs no signal handler and never exits the process.

use crate::ClpError;
use clp_gpu::cancel;
use clp_gpu::progress::{Progress, Update};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use std::ffi::OsString;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the waiting thread looks for signals.
const POLL: Duration = Duration::from_millis(50);

/// What the worker hands back: the report, an engine error, or a panic.
type Outcome = std::thread::Result<anyhow::Result<serde_json::Value>>;

/// The first exception a progress callback raised.
type Raised = Arc<Mutex<Option<PyErr>>>;

/// Runs `words` (see the Python function `_native.run`).
pub fn run(py: Python<'_>, words: Vec<OsString>, progress: Option<Py<PyAny>>) -> PyResult<String> {
    let _active = Active::enter();
    let raised = Raised::default();
    let sink = match progress {
        Some(f) => callback(f, raised.clone()),
        None => Progress::Hidden,
    };
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("clp-gpu".into())
        .spawn(move || {
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| clp_gpu::cli::report(words, sink)));
            let _ = tx.send(outcome);
        })
        .map_err(|e| ClpError::new_err(format!("cannot start a worker thread: {e}")))?;
    let waited = wait(py, rx);
    let _ = py.detach(move || worker.join());
    let outcome = waited?;
    if let Some(e) = take(&raised) {
        return Err(e);
    }
    match outcome {
        Ok(Ok(report)) => Ok(report.to_string()),
        Ok(Err(e)) if clp_gpu::cli::is_cancelled(&e) => {
            Err(PyKeyboardInterrupt::new_err(e.to_string()))
        }
        Ok(Err(e)) => Err(ClpError::new_err(format!("{e:#}"))),
        Err(panic) => Err(ClpError::new_err(format!(
            "internal error: {} (a bug in clp-gpu; please report it)",
            panic_message(&panic)
        ))),
    }
}

/// Waits for the worker's outcome with the GIL released, checking for signals between slices.
/// When a signal handler raises (KeyboardInterrupt), asks the engine to stop, waits for the
/// worker to finish cleaning up, and returns that exception.
fn wait(py: Python<'_>, mut rx: Receiver<Outcome>) -> PyResult<Outcome> {
    loop {
        let (got, back) = py.detach(move || (rx.recv_timeout(POLL), rx));
        rx = back;
        match got {
            Ok(outcome) => return Ok(outcome),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    cancel::request();
                    let _ = py.detach(move || rx.recv());
                    return Err(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ClpError::new_err(
                    "the worker thread ended without a result (a bug in clp-gpu; please report it)",
                ))
            }
        }
    }
}

/// Progress that calls `f(task, done, total, unit, finished)` with the GIL held. The first
/// exception `f` raises is kept in `raised` and stops the run; `f` is not called again. (The
/// lock is never held while `f` runs: `f` may release the GIL.)
fn callback(f: Py<PyAny>, raised: Raised) -> Progress {
    Progress::callback(move |u: &Update| {
        if lock(&raised).is_some() {
            return;
        }
        Python::attach(|py| {
            let args = (u.task, u.done, u.total, u.unit.name(), u.finished);
            if let Err(e) = f.call1(py, args) {
                lock(&raised).get_or_insert(e);
                cancel::request();
            }
        })
    })
}

fn lock(raised: &Raised) -> std::sync::MutexGuard<'_, Option<PyErr>> {
    raised.lock().unwrap_or_else(|p| p.into_inner())
}

fn take(raised: &Raised) -> Option<PyErr> {
    lock(raised).take()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".into()
    }
}

/// Calls in progress. The cancellation flag is process-wide: Ctrl-C stops every call in
/// progress, and the flag is cleared when the last of them has returned.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

struct Active;

impl Active {
    fn enter() -> Active {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if ACTIVE.fetch_sub(1, Ordering::SeqCst) == 1 {
            cancel::clear();
        }
    }
}
