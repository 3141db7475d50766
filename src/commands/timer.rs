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

    /// Ends the current stage as `stage` and starts the next one. A stage timed in several laps
    /// (apply's `write`: the tensors, then the metadata) gets their sum.
    pub fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        *self.stages.entry(stage.to_string()).or_insert(0.0) += (now - self.last).as_secs_f64();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stage_timed_twice_sums_its_laps() {
        let mut t = Timer::start();
        std::thread::sleep(Duration::from_millis(30));
        t.lap("write");
        std::thread::sleep(Duration::from_millis(5));
        t.lap("compute");
        std::thread::sleep(Duration::from_millis(30));
        t.lap("write");
        let s = t.stages();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["compute", "write"]);
        // Each lap slept at least 30 ms: the sum is at least 60 ms, one lap alone is less.
        assert!(s["write"] >= 0.060, "write {} s", s["write"]);
        assert!(s["compute"] < s["write"]);
    }
}
