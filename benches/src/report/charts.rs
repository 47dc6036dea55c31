//! PNG charts (plotters' bitmap backend). Text needs a TrueType font, read at run time from
//! `PULSAR_BENCH_FONT` or a usual system location, so that nothing links to fontconfig or
//! freetype.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::BenchError;

/// Where a TrueType font is usually found.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers the font for "sans-serif" once; the error says how to provide one.
pub fn init_font() -> Result<(), BenchError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<String> = std::env::var("PULSAR_BENCH_FONT")
            .into_iter()
            .chain(FONT_PATHS.iter().map(|s| s.to_string()))
            .collect();
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(
            "no TrueType font found: set PULSAR_BENCH_FONT to a .ttf file \
             (e.g. DejaVuSans.ttf from fonts-dejavu-core)"
                .to_owned(),
        )
    })
    .clone()
    .map_err(BenchError::Chart)
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

/// The colour of a client in every chart.
pub fn color_of(client: &str) -> RGBColor {
    match client {
        "sansio-tokio" => RGBColor(0x1f, 0x77, 0xb4),
        "sansio-smol" => RGBColor(0x17, 0xbe, 0xcf),
        "sansio-blocking" => RGBColor(0x2c, 0xa0, 0x2c),
        "pulsar-rs" => RGBColor(0xd6, 0x27, 0x28),
        "java" => RGBColor(0xff, 0x7f, 0x0e),
        "python" => RGBColor(0x94, 0x67, 0xbd),
        _ => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// An axis label: `250k`, `1.5M`, `0.25`, `12`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// One bar chart panel: one bar per label (missing values leave a gap marked "n/a").
pub struct Bars<'a> {
    /// Panel title.
    pub title: &'a str,
    /// Y axis description.
    pub y_desc: &'a str,
    /// Category labels (client ids).
    pub labels: &'a [String],
    /// Values (`None`: n/a).
    pub values: &'a [Option<f64>],
    /// How a value is printed above its bar.
    pub fmt: &'a dyn Fn(f64) -> String,
}

impl std::fmt::Debug for Bars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("title", &self.title)
            .field("labels", &self.labels)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

fn draw_bars(area: &DrawingArea<BitMapBackend<'_>, Shift>, b: &Bars<'_>) -> Result<(), BenchError> {
    let n = b.labels.len().max(1);
    let top = b
        .values
        .iter()
        .flatten()
        .cloned()
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(b.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
        .map_err(err)?;
    let labels = b.labels.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_style(("sans-serif", 12))
        .x_label_formatter(&move |v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(b.y_desc)
        .y_label_style(("sans-serif", 13))
        .y_label_formatter(&|v| compact(*v))
        .draw()
        .map_err(err)?;
    let label_style = ("sans-serif", 13)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, v) in b.values.iter().enumerate() {
        let color = color_of(b.labels.get(i).map(String::as_str).unwrap_or(""));
        match v {
            Some(v) => {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 10, 10);
                chart.draw_series(std::iter::once(r)).map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        (b.fmt)(*v),
                        (SegmentValue::CenterOf(i), *v),
                        label_style.clone(),
                    )))
                    .map_err(err)?;
            }
            None => {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "n/a".to_string(),
                        (SegmentValue::CenterOf(i), top * 0.02),
                        label_style.clone(),
                    )))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Side-by-side bar chart panels in one PNG.
pub fn bar_panels(path: &Path, panels: &[Bars<'_>]) -> Result<(), BenchError> {
    init_font()?;
    let width = 560 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_bars(area, panel)?;
    }
    root.present().map_err(err)
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend (client id).
    pub name: String,
    /// Points (x, y), drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a fit or a reference) instead of solid with markers.
    pub dashed: bool,
}

/// A line chart panel with optional log axes.
#[derive(Debug)]
pub struct Lines<'a> {
    /// Panel title.
    pub title: &'a str,
    /// X axis description.
    pub x_desc: &'a str,
    /// Y axis description.
    pub y_desc: &'a str,
    /// Logarithmic x.
    pub log_x: bool,
    /// Logarithmic y.
    pub log_y: bool,
    /// The lines.
    pub lines: &'a [Line],
}

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (1.0, 10.0);
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.0, hi * 1.1 + 1e-9)
    }
}

/// Draws a line panel on any pair of axes (a macro: plotters' axis types differ per scale).
macro_rules! draw_lines {
    ($area:expr, $l:expr, $x:expr, $y:expr) => {{
        let l: &Lines<'_> = $l;
        let mut chart = ChartBuilder::on($area)
            .caption(l.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d($x, $y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(l.x_desc)
            .y_desc(l.y_desc)
            .x_label_style(("sans-serif", 12))
            .y_label_style(("sans-serif", 12))
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(err)?;
        for line in l.lines {
            let color = color_of(&line.name);
            let mut pts = line.points.clone();
            pts.retain(|(a, b)| a.is_finite() && b.is_finite() && (!l.log_y || *b > 0.0));
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 4, color.stroke_width(1)))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(line.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)
    }};
}

fn draw_line_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    l: &Lines<'_>,
) -> Result<(), BenchError> {
    let (x0, x1) = bounds(
        l.lines.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
        l.log_x,
    );
    let (y0, y1) = bounds(
        l.lines.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        l.log_y,
    );
    match (l.log_x, l.log_y) {
        (true, true) => draw_lines!(area, l, (x0..x1).log_scale(), (y0..y1).log_scale()),
        (true, false) => draw_lines!(area, l, (x0..x1).log_scale(), y0..y1),
        (false, true) => draw_lines!(area, l, x0..x1, (y0..y1).log_scale()),
        (false, false) => draw_lines!(area, l, x0..x1, y0..y1),
    }
}

/// Side-by-side line chart panels in one PNG.
pub fn line_panels(path: &Path, panels: &[Lines<'_>]) -> Result<(), BenchError> {
    init_font()?;
    let width = 620 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_line_panel(area, panel)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_labels() {
        assert_eq!(compact(600_000.0), "600k");
        assert_eq!(compact(1_500_000.0), "1.5M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(12.0), "12");
        assert_eq!(compact(4096.0), "4096");
    }
}
