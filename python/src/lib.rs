//! `clp_gpu._native`, the extension module under the `clp_gpu` Python package
//! (`python/clp_gpu/__init__.py` holds the functions people call).
//!
//! The module adds no command logic of its own: a Python call becomes a command line that the
//! engine's own parser reads ([`clp_gpu::cli::report`]), so every flag, default and check is
//! the CLI's, and [`flags::spec`] describes those flags (from [`clp_gpu::cli::command`]) for
//! the Python side to build signatures, docstrings and the type stub from. [`worker::run`] does the
//! work on a worker thread with the GIL released, turns Ctrl-C into a cancelled run
//! ([`clp_gpu::cancel`]) and errors into [`ClpError`].

mod flags;
mod worker;

use pyo3::prelude::*;
use std::ffi::OsString;

pyo3::create_exception!(
    clp_gpu,
    ClpError,
    pyo3::exceptions::PyException,
    "A clp-gpu command failed; the message is the one line the CLI prints after `error:`."
);

/// Runs the command line `words` (`["clp-gpu", "apply", "--source", ...]`) and returns its
/// report as JSON text. `progress(task, done, total, unit, finished)` is called on every
/// progress update (None: no progress). Raises ClpError, or KeyboardInterrupt when Ctrl-C (or
/// an exception raised by `progress`) stopped the run; nothing is then left at OUT.
#[pyfunction]
#[pyo3(signature = (words, progress=None))]
fn run(py: Python<'_>, words: Vec<OsString>, progress: Option<Py<PyAny>>) -> PyResult<String> {
    worker::run(py, words, progress)
}

/// The subcommands and their flags (help, defaults, choices, types) as JSON text.
#[pyfunction]
fn spec() -> String {
    flags::spec().to_string()
}

/// The `clp-gpu` command line (`argv` with the program name first); returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| clp_gpu::cli::run_status(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: module init runs once, at import, on the importing thread holding the GIL, before
    // this module has started any thread (runs start theirs later); see the function's docs.
    unsafe { clp_gpu::backend::gpu::quiet_mesa_device_select() };
    m.add("ClpError", m.py().get_type::<ClpError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(spec, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    Ok(())
}
