//! Benchmark results: a printed table and a JSON file.

use std::time::Duration;

use serde::Serialize;

/// The `p` quantile (0..=1, nearest rank) of sorted durations, in milliseconds (0 if empty).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `ops/s`.
    pub unit: String,
}

/// One ratio against a baseline measured in the same run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// What is compared with what.
    pub name: String,
    /// measured / baseline.
    pub value: f64,
    /// The target the issue sets (ratio ≥ target).
    pub target: f64,
}

/// The results of one workload.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The workload.
    pub workload: String,
    /// Parameters (payload size, concurrency, counts).
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Figures.
    pub measurements: Vec<Measurement>,
    /// Ratios against baselines.
    pub ratios: Vec<Ratio>,
}

impl Report {
    /// An empty report of `workload`.
    pub fn new(workload: &str) -> Self {
        Report {
            workload: workload.into(),
            ..Default::default()
        }
    }

    /// The value of the figure `name`, if it was measured.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// Adds a figure.
    pub fn measure(&mut self, name: &str, value: f64, unit: &str) {
        self.measurements.push(Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
        });
    }

    /// Adds a ratio.
    pub fn ratio(&mut self, name: &str, value: f64, target: f64) {
        self.ratios.push(Ratio {
            name: name.into(),
            value,
            target,
        });
    }

    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let mut out = format!("workload: {}\n", self.workload);
        for (k, v) in &self.parameters {
            out += &format!("  {k} = {v}\n");
        }
        let width = self
            .measurements
            .iter()
            .map(|m| m.name.len())
            .chain(self.ratios.iter().map(|r| r.name.len()))
            .max()
            .unwrap_or(0);
        for m in &self.measurements {
            out += &format!("  {:<width$}  {:>12.1} {}\n", m.name, m.value, m.unit);
        }
        for r in &self.ratios {
            let verdict = if r.value >= r.target {
                "meets"
            } else {
                "BELOW"
            };
            out += &format!(
                "  {:<width$}  {:>12.2} x   (target >= {:.2}: {verdict})\n",
                r.name, r.value, r.target
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_durations() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), 51.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
