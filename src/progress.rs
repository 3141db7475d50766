//! Progress of long stages (tensors copied, rows computed, corpus lines counted, documents
//! scored), wherever it shows: nowhere ([`Progress::Hidden`]), as indicatif bars on a terminal's
//! stderr ([`Progress::Terminal`], the CLI), or as [`Update`]s handed to a callback
//! ([`Progress::Callback`], the Python module, which draws tqdm bars or plain lines: indicatif's
//! stderr output is invisible in a notebook). Commands take a [`Progress`] in their options
//! and open one [`Bar`] per task.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Embedding rows.
    Rows,
    /// Bytes.
    Bytes,
    /// Lines of a text file.
    Lines,
    /// Documents of a text.
    Documents,
}

impl Unit {
    /// The unit's name, plural (`rows`, `bytes`, `lines`, `documents`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Rows => "rows",
            Unit::Bytes => "bytes",
            Unit::Lines => "lines",
            Unit::Documents => "documents",
        }
    }

    /// The indicatif template of a bar counting this unit (the CLI's look).
    fn template(self) -> &'static str {
        match self {
            Unit::Rows => "{msg} {wide_bar} {pos}/{len} rows, eta {eta}",
            Unit::Bytes => "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}",
            Unit::Lines => "{msg} {wide_bar} {pos}/{len} lines, eta {eta}",
            Unit::Documents => "{msg} [{bar:30}] {pos}/{len} documents ({eta} left)",
        }
    }
}

/// One report on a task, handed to a [`Progress::Callback`]: when the bar opens (`done` 0),
/// after each step, and once with `finished` when the task is done.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// What is being done, e.g. `computing rows on cpu`.
    pub task: &'a str,
    /// Units done so far.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What is counted.
    pub unit: Unit,
    /// The task is over (the last update of its bar).
    pub finished: bool,
}

/// A receiver of [`Update`]s; called on the thread doing the work.
pub type Callback = Arc<dyn Fn(&Update) + Send + Sync>;

/// Where progress shows.
#[derive(Clone, Default)]
pub enum Progress {
    /// Nowhere.
    #[default]
    Hidden,
    /// indicatif bars on stderr (the caller checks that stderr is a terminal).
    Terminal,
    /// Every update goes to this callback.
    Callback(Callback),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Hidden => "Hidden",
            Progress::Terminal => "Terminal",
            Progress::Callback(_) => "Callback",
        })
    }
}

impl Progress {
    /// Progress handed to `f`.
    pub fn callback(f: impl Fn(&Update) + Send + Sync + 'static) -> Progress {
        Progress::Callback(Arc::new(f))
    }

    /// A bar for a task of `total` units.
    pub fn bar(&self, task: impl Into<String>, total: u64, unit: Unit) -> Bar {
        self.open(task.into(), Some(total), unit)
    }

    /// A counter for a task whose total is not known in advance.
    pub fn counter(&self, task: impl Into<String>, unit: Unit) -> Bar {
        self.open(task.into(), None, unit)
    }

    fn open(&self, task: String, total: Option<u64>, unit: Unit) -> Bar {
        let kind = match self {
            Progress::Hidden => Kind::Hidden,
            Progress::Terminal => Kind::Terminal(terminal_bar(task, total, unit)),
            Progress::Callback(f) => {
                let state = State {
                    task,
                    done: 0,
                    total,
                    unit,
                    finished: false,
                };
                f(&state.update());
                Kind::Callback {
                    f: f.clone(),
                    state: Mutex::new(state),
                }
            }
        };
        Bar { kind }
    }
}

fn terminal_bar(task: String, total: Option<u64>, unit: Unit) -> ProgressBar {
    let Some(total) = total else {
        let pb = ProgressBar::new_spinner().with_message(task);
        let template = format!("{{spinner}} {{msg}}: {{pos}} {}", unit.name());
        if let Ok(style) = ProgressStyle::with_template(&template) {
            pb.set_style(style);
        }
        pb.enable_steady_tick(Duration::from_millis(120));
        return pb;
    };
    let pb = ProgressBar::new(total).with_message(task);
    if let Ok(style) = ProgressStyle::with_template(unit.template()) {
        pb.set_style(match unit {
            Unit::Documents => style.progress_chars("=> "),
            _ => style,
        });
    }
    pb
}

/// One task's progress; see [`Progress`].
pub struct Bar {
    kind: Kind,
}

enum Kind {
    Hidden,
    Terminal(ProgressBar),
    Callback { f: Callback, state: Mutex<State> },
}

struct State {
    task: String,
    done: u64,
    total: Option<u64>,
    unit: Unit,
    finished: bool,
}

impl State {
    fn update(&self) -> Update<'_> {
        Update {
            task: &self.task,
            done: self.done,
            total: self.total,
            unit: self.unit,
            finished: self.finished,
        }
    }
}

impl Bar {
    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        match &self.kind {
            Kind::Hidden => {}
            Kind::Terminal(pb) => pb.inc(n),
            Kind::Callback { f, state } => report(f, state, |s| s.done += n),
        }
    }

    /// `done` units done in all.
    pub fn set_position(&self, done: u64) {
        match &self.kind {
            Kind::Hidden => {}
            Kind::Terminal(pb) => pb.set_position(done),
            Kind::Callback { f, state } => report(f, state, |s| s.done = done),
        }
    }

    /// The task is over: the terminal bar is cleared, the callback told once.
    pub fn finish(&self) {
        match &self.kind {
            Kind::Hidden => {}
            Kind::Terminal(pb) => pb.finish_and_clear(),
            Kind::Callback { f, state } => report(f, state, |s| s.finished = true),
        }
    }
}

/// Applies `change` and hands the new state to `f` (outside the lock, so a callback that takes
/// its time, or a lock of its own, never blocks another bar). Nothing is sent after `finished`.
fn report(f: &Callback, state: &Mutex<State>, change: impl FnOnce(&mut State)) {
    let snapshot = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.finished {
            return;
        }
        change(&mut s);
        State {
            task: s.task.clone(),
            ..*s
        }
    };
    f(&snapshot.update());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_sees_open_steps_and_one_finish() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let progress = Progress::callback(move |u| {
            log.lock()
                .unwrap()
                .push((u.task.to_string(), u.done, u.total, u.finished))
        });
        let bar = progress.bar("copying", 10, Unit::Bytes);
        bar.inc(4);
        bar.set_position(10);
        bar.finish();
        bar.finish();
        bar.inc(1);
        let seen = seen.lock().unwrap();
        let t = || "copying".to_string();
        assert_eq!(
            *seen,
            vec![
                (t(), 0, Some(10), false),
                (t(), 4, Some(10), false),
                (t(), 10, Some(10), false),
                (t(), 10, Some(10), true),
            ]
        );
    }
}
