//! Benchmark results: a printed table, a JSON file, and the series a chart draws
//! ([`super::chart`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `p` quantile (0..=1, nearest rank) of sorted durations, in milliseconds (0 if empty).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// One measured figure.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `ops/s`.
    pub unit: String,
}

/// One ratio against a baseline measured in the same run.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Ratio {
    /// What is compared with what.
    pub name: String,
    /// measured / baseline.
    pub value: f64,
    /// The target the issue sets (ratio ≥ target).
    pub target: f64,
}

/// One line of a [`Series`].
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Line {
    /// What the line shows (the legend).
    pub name: String,
    /// `(x, y)` points, in order.
    pub points: Vec<(f64, f64)>,
}

/// Lines sharing axes, drawn as one chart: a latency distribution, a count over time.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Series {
    /// The chart's title.
    pub name: String,
    /// The x axis' unit.
    pub x_unit: String,
    /// The y axis' unit.
    pub y_unit: String,
    /// The lines.
    pub lines: Vec<Line>,
}

/// At most this many points per line of a distribution.
const CDF_POINTS: usize = 200;

/// The results of one workload.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Report {
    /// The workload.
    pub workload: String,
    /// Parameters (payload size, concurrency, counts).
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Figures.
    pub measurements: Vec<Measurement>,
    /// Ratios against baselines.
    pub ratios: Vec<Ratio>,
    /// Series for the chart (not printed in the table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
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

    /// Adds a series.
    pub fn series(&mut self, name: &str, x_unit: &str, y_unit: &str, lines: Vec<Line>) {
        self.series.push(Series {
            name: name.into(),
            x_unit: x_unit.into(),
            y_unit: y_unit.into(),
            lines,
        });
    }

    /// Adds the cumulative distributions of latencies (each sorted ascending), one line per
    /// `(name, latencies)`: x the latency in ms, y the share of requests at most that slow, in
    /// %; at most [`CDF_POINTS`] points per line, always with the slowest.
    pub fn cdf(&mut self, name: &str, lines: &[(&str, &[Duration])]) {
        let lines = lines
            .iter()
            .map(|(n, sorted)| Line {
                name: (*n).into(),
                points: cdf_points(sorted),
            })
            .collect();
        self.series(
            name,
            "latency (ms)",
            "requests at most that slow (%)",
            lines,
        );
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

fn cdf_points(sorted: &[Duration]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut idx: Vec<usize> = (step - 1..n).step_by(step).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    idx.into_iter()
        .map(|i| {
            (
                sorted[i].as_secs_f64() * 1000.0,
                (i + 1) as f64 * 100.0 / n as f64,
            )
        })
        .collect()
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

    #[test]
    fn distributions_keep_their_shape_in_at_most_200_points() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let mut r = Report::default();
        r.cdf("latency", &[("all", &v), ("none", &[])]);
        let lines = &r.series[0].lines;
        let all = &lines[0].points;
        assert!(all.len() <= CDF_POINTS, "{}", all.len());
        assert_eq!(all.first(), Some(&(5.0, 0.5)));
        assert_eq!(all.last(), Some(&(1000.0, 100.0)));
        assert!(all.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(lines[1].points.is_empty());
        let few: Vec<Duration> = (1..=3).map(Duration::from_millis).collect();
        assert_eq!(
            cdf_points(&few),
            vec![(1.0, 100.0 / 3.0), (2.0, 200.0 / 3.0), (3.0, 100.0)]
        );
    }
}
