//! A chart of a benchmark's results, as SVG next to its JSON: the ratios against the baselines
//! of the same run (bars, with the target marked), the figures grouped by unit (bars),
//! and every series (lines, e.g. a latency distribution or a count over time).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{Measurement, Report, Series};

/// Width of the picture, in pixels.
const WIDTH: u32 = 1000;
/// Height of one bar, in pixels.
const BAR: u32 = 26;
/// Height of a line chart.
const LINES: u32 = 380;
/// Units with the most figures get a panel each, at most this many.
const UNIT_PANELS: usize = 3;

/// The failure to draw or write the chart.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart {path}: {message}")]
pub struct ChartError {
    path: String,
    message: String,
}

/// One panel of the picture.
enum Panel<'a> {
    Ratios,
    Unit(&'a str, Vec<&'a Measurement>),
    Series(&'a Series),
}

impl Panel<'_> {
    fn height(&self, r: &Report) -> u32 {
        match self {
            Panel::Ratios => 70 + BAR * r.ratios.len() as u32,
            Panel::Unit(_, ms) => 70 + BAR * ms.len() as u32,
            Panel::Series(_) => LINES,
        }
    }
}

/// The panels a report gets: ratios, figures by unit (the units with the most figures), series.
fn panels(r: &Report) -> Vec<Panel<'_>> {
    let mut out = Vec::new();
    if !r.ratios.is_empty() {
        out.push(Panel::Ratios);
    }
    let mut units: Vec<(&str, Vec<&Measurement>)> = Vec::new();
    for m in &r.measurements {
        match units.iter_mut().find(|(u, _)| *u == m.unit) {
            Some((_, ms)) => ms.push(m),
            None => units.push((&m.unit, vec![m])),
        }
    }
    // Stable: among units with as many figures, the first reported comes first.
    units.sort_by_key(|(_, ms)| std::cmp::Reverse(ms.len()));
    out.extend(
        units
            .into_iter()
            .take(UNIT_PANELS)
            .map(|(u, ms)| Panel::Unit(u, ms)),
    );
    out.extend(r.series.iter().map(Panel::Series));
    out
}

/// Draws the report into an SVG file at `path`. A report with nothing to draw gets a picture
/// saying so.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let panels = panels(report);
    let heights: Vec<u32> = panels.iter().map(|p| p.height(report)).collect();
    let total = 40 + heights.iter().sum::<u32>().max(60);
    let root = SVGBackend::new(path, (WIDTH, total)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (title, mut rest) = root.split_vertically(40);
    title
        .draw_text(
            &format!("rkube-bench {}", report.workload),
            &("sans-serif", 22).into_font().color(&BLACK),
            (10, 10),
        )
        .map_err(|e| err(&e))?;
    if panels.is_empty() {
        rest.draw_text(
            "no figures",
            &("sans-serif", 16).into_font().color(&BLACK),
            (10, 10),
        )
        .map_err(|e| err(&e))?;
    }
    for (panel, h) in panels.iter().zip(heights) {
        let (area, below) = rest.split_vertically(h);
        match panel {
            Panel::Ratios => ratios(report, &area).map_err(|e| err(&e))?,
            Panel::Unit(unit, ms) => figures(unit, ms, &area).map_err(|e| err(&e))?,
            Panel::Series(s) => series(s, &area).map_err(|e| err(&e))?,
        }
        rest = below;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type DrawResult =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

/// Horizontal bars, one per `(label, value, colour)`, labelled on the bar; `marks` are drawn
/// as vertical ticks across bar `i` at value `x`.
fn bars(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    rows: &[(String, f64, RGBColor)],
    marks: &[(usize, f64)],
) -> DrawResult {
    let max = rows
        .iter()
        .map(|r| r.1)
        .chain(marks.iter().map(|m| m.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let max = if max > 0.0 { max * 1.1 } else { 1.0 };
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(24)
        .build_cartesian_2d(0.0..max, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_labels(8)
        .label_style(("sans-serif", 12))
        .x_label_formatter(&|v| compact(*v))
        .draw()?;
    for (i, (label, value, colour)) in rows.iter().enumerate() {
        // The first row at the top.
        let y = n - i as f64;
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y - 0.85), (value, y - 0.15)],
            colour.mix(0.45).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (max * 0.005, y - 0.3),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    for &(i, x) in marks {
        let y = n - i as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, y - 0.95), (x, y - 0.05)],
            BLACK.stroke_width(2),
        )))?;
    }
    Ok(())
}

fn ratios(r: &Report, area: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
    let rows: Vec<(String, f64, RGBColor)> = r
        .ratios
        .iter()
        .map(|x| {
            let colour = if x.value >= x.target { GREEN } else { RED };
            (
                format!("{}: {:.2}x (target {:.2})", x.name, x.value, x.target),
                x.value,
                colour,
            )
        })
        .collect();
    let marks: Vec<(usize, f64)> = r.ratios.iter().map(|x| x.target).enumerate().collect();
    bars(
        area,
        "measured / baseline of the same run (black tick: the target)",
        &rows,
        &marks,
    )
}

fn figures(
    unit: &str,
    ms: &[&Measurement],
    area: &DrawingArea<SVGBackend<'_>, Shift>,
) -> DrawResult {
    let rows: Vec<(String, f64, RGBColor)> = ms
        .iter()
        .map(|m| (format!("{}: {:.1} {unit}", m.name, m.value), m.value, BLUE))
        .collect();
    bars(area, &format!("figures in {unit}"), &rows, &[])
}

fn series(s: &Series, area: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
    let finite = |v: &f64| v.is_finite();
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for line in &s.lines {
        for &(x, y) in line.points.iter().filter(|(x, y)| finite(x) && finite(y)) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    // Start at zero where it is near, and never an empty range.
    let y0 = if y0 >= 0.0 { 0.0 } else { y0 };
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let y1 = if y1 > y0 { y1 * 1.05 } else { y0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&s.name, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(s.x_unit.as_str())
        .y_desc(s.y_unit.as_str())
        .label_style(("sans-serif", 12))
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&|v| compact(*v))
        .draw()?;
    for (i, line) in s.lines.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                line.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| finite(x) && finite(y)),
                colour.stroke_width(2),
            ))?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// An axis label: few digits, `k`/`M` for thousands and millions.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    format!("{s}{suffix}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_report_becomes_an_svg_with_every_figure() {
        let mut r = Report {
            workload: "example".into(),
            ..Default::default()
        };
        r.measure("creates", 5970.0, "ops/s");
        r.measure("gets", 19274.0, "ops/s");
        r.measure("create p99", 22.4, "ms");
        r.ratio("creates vs raw puts", 0.51, 0.5);
        r.ratio("scheduled vs admitted", 0.76, 1.0);
        let lat: Vec<Duration> = (1..=500).map(Duration::from_millis).collect();
        r.cdf("pod startup latency", &[("hollow", &lat)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.svg");
        write_svg(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "rkube-bench example",
            "creates vs raw puts: 0.51x (target 0.50)",
            "scheduled vs admitted: 0.76x (target 1.00)",
            "figures in ops/s",
            "creates: 5970.0 ops/s",
            "create p99: 22.4 ms",
            "pod startup latency",
            "hollow",
        ] {
            assert!(svg.contains(text), "{text:?} missing from the chart");
        }
        // One bar per ratio and figure, a line for the series.
        assert!(svg.matches("<rect").count() >= 5, "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(50.0), "50");
        assert_eq!(compact(12.5), "12.5");
        assert_eq!(compact(5000.0), "5000");
        assert_eq!(compact(20000.0), "20k");
        assert_eq!(compact(350000.0), "350k");
        assert_eq!(compact(2_500_000.0), "2.50M");
    }

    #[test]
    fn an_empty_report_still_draws() {
        let r = Report {
            workload: "empty".into(),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        write_svg(&r, &path).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("no figures")
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let r = Report::default();
        let e = write_svg(&r, Path::new("/nonexistent/dir/x.svg")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/x.svg"), "{e}");
    }
}
