//! Wall time per stage, for the `timings_s` of the reports.

use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds per named stage, measured lap by lap.
#[derive(Debug)]
pub struct Timer {
    stages: BTreeMap<String, f64>,
    last: Instant,
}

impl Timer {
    /// Starts timing the first stage now.
    pub fn start() -> Timer {
        Timer {
            stages: BTreeMap::new(),
            last: Instant::now(),
        }
    }

    /// Ends the current stage as `stage` (a stage timed twice keeps the last lap) and starts
    /// the next one.
    pub fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages
            .insert(stage.to_string(), (now - self.last).as_secs_f64());
        self.last = now;
    }

    /// Records `seconds` measured elsewhere under `stage`.
    pub fn record(&mut self, stage: String, seconds: f64) {
        self.stages.insert(stage, seconds);
    }

    /// Seconds per stage so far.
    pub fn stages(&self) -> &BTreeMap<String, f64> {
        &self.stages
    }
}
