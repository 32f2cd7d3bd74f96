//! The report's charts, drawn with plotters' SVG backend into strings:
//! each backend's share over time, one panel per algorithm, and the
//! algorithms' latency distributions on one set of axes. The SVG backend
//! writes text as `<text>` elements, so no font is needed to draw.

use std::fmt::Display;

use plotters::prelude::*;

use crate::Error;
use crate::stats::Series;

/// Lines of the backends (in order), a colour each; enough for five.
const BACKEND_COLOURS: [RGBColor; 5] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
];

/// The line of requests no backend answered.
const NO_ANSWER_COLOUR: RGBColor = RGBColor(0x00, 0x00, 0x00);

/// Lines of the algorithms, in `Algorithm::ALL`'s order.
const ALGORITHM_COLOURS: [RGBColor; 6] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0xFF, 0x7F, 0x0E),
    RGBColor(0x7F, 0x7F, 0x7F),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xBD),
];

/// The colour of the `index`th line of a share chart, named `name`.
pub fn share_colour(index: usize, name: &str) -> RGBColor {
    if name == "no answer" {
        NO_ANSWER_COLOUR
    } else {
        BACKEND_COLOURS[index % BACKEND_COLOURS.len()]
    }
}

/// The colour of the `index`th algorithm's latency curve.
pub fn algorithm_colour(index: usize) -> RGBColor {
    ALGORITHM_COLOURS[index % ALGORITHM_COLOURS.len()]
}

/// `#1F77B4`, as plotters writes a colour into SVG.
pub fn svg_colour(colour: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
}

/// One panel of a share chart: an algorithm's run.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    /// The run's length in seconds: the x axis.
    pub seconds: f64,
    /// A moment to mark with a vertical line, and its legend.
    pub marker: Option<(f64, String)>,
}

/// The top of a share chart's y axis: 100%, and room for the legend.
const HEADROOM: f64 = 1.45;

fn draw_error(err: impl Display) -> Error {
    format!("drawing a chart: {err}").into()
}

/// A chart of shares (0 to 100%) over time, two panels a row.
pub fn shares_svg(
    title: &str,
    y_label: &str,
    panels: &[Panel],
) -> Result<String, Error> {
    let rows = panels.len().div_ceil(2).max(1);
    let mut svg = String::new();
    {
        let size = (1000, 40 + 280 * rows as u32);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let root =
            root.titled(title, ("sans-serif", 22)).map_err(draw_error)?;
        let areas = root.split_evenly((rows, 2));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(area, panel, y_label)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    y_label: &str,
) -> Result<(), Error> {
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(50)
        // Headroom above 100% for the legend, so that it hides no line.
        .build_cartesian_2d(0f64..panel.seconds.max(0.001), 0f64..HEADROOM)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .y_labels(8)
        .y_label_formatter(&|&share| {
            if share <= 1.0 {
                format!("{:.0}%", share * 100.0)
            } else {
                String::new()
            }
        })
        .light_line_style(WHITE)
        .draw()
        .map_err(draw_error)?;
    for (index, series) in panel.series.iter().enumerate() {
        let style = share_colour(index, &series.name).stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), style))
            .map_err(draw_error)?
            .label(&series.name)
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], style)
            });
    }
    if let Some((at, label)) = &panel.marker {
        let style = BLACK.mix(0.5).stroke_width(1);
        chart
            .draw_series(LineSeries::new([(*at, 0.0), (*at, 1.0)], style))
            .map_err(draw_error)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], style)
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(draw_error)
}

/// The latency distributions of several runs (each a series of
/// (milliseconds, share answered within them)) on one chart, the
/// latency on a logarithmic axis: a curve further left and steeper is
/// better.
pub fn latency_svg(title: &str, curves: &[Series]) -> Result<String, Error> {
    let all = || curves.iter().flat_map(|curve| curve.points.iter());
    let lowest = all().map(|&(ms, _)| ms).fold(f64::INFINITY, f64::min);
    let highest = all().map(|&(ms, _)| ms).fold(0f64, f64::max);
    // A decade's margin at most on either side, and never a zero (the
    // axis is logarithmic).
    let lowest = if lowest.is_finite() {
        lowest.max(0.01) * 0.8
    } else {
        0.1
    };
    let highest = (highest * 1.25).max(lowest * 10.0);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((lowest..highest).log_scale(), 0f64..1.02f64)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("latency, ms (logarithmic)")
            .y_desc("requests answered within it")
            .y_label_formatter(&|share| format!("{:.0}%", share * 100.0))
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_error)?;
        for (index, curve) in curves.iter().enumerate() {
            let style = algorithm_colour(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().copied(),
                    style,
                ))
                .map_err(draw_error)?
                .label(&curve.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], style)
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element, and the stroke colour of every
    /// `<polyline>` (a line series), of an SVG that must parse as XML.
    fn texts_and_lines(svg: &str) -> (Vec<String>, Vec<String>) {
        let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts = doc
            .descendants()
            .filter(|node| node.has_tag_name("text"))
            .filter_map(|node| node.text().map(|text| text.trim().to_owned()))
            .collect();
        let lines = doc
            .descendants()
            .filter(|node| node.has_tag_name("polyline"))
            .filter_map(|node| node.attribute("stroke").map(str::to_owned))
            .collect();
        (texts, lines)
    }

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series {
            name: name.to_owned(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn a_share_chart_holds_a_panel_per_run_and_a_line_per_backend() {
        let panels: Vec<Panel> = ["round-robin", "maglev", "random"]
            .iter()
            .map(|title| Panel {
                title: (*title).to_owned(),
                series: vec![
                    series("b1 1 ms", &[(0.1, 0.5), (0.3, 0.4)]),
                    series("b2 20 ms", &[(0.1, 0.3), (0.3, 0.4)]),
                    series("no answer", &[(0.1, 0.2), (0.3, 0.2)]),
                ],
                seconds: 0.4,
                marker: Some((0.2, "b2 fails".to_owned())),
            })
            .collect();
        let svg = shares_svg("slow: requests", "share", &panels).unwrap();
        let (texts, lines) = texts_and_lines(&svg);
        for wanted in [
            "slow: requests",
            "round-robin",
            "maglev",
            "random",
            "b1 1 ms",
            "b2 20 ms",
            "no answer",
            "b2 fails",
            "seconds",
        ] {
            assert!(texts.iter().any(|t| t == wanted), "{wanted} in {texts:?}");
        }
        let stroke = |index, name| svg_colour(share_colour(index, name));
        for (index, name) in
            ["b1 1 ms", "b2 20 ms", "no answer"].iter().enumerate()
        {
            let drawn =
                lines.iter().filter(|&l| *l == stroke(index, name)).count();
            // Each panel's line, and its sample in the legend (a path or
            // a polyline, as plotters sees fit): three at least.
            assert!(drawn >= 3, "{name}: {drawn} lines of {lines:?}");
        }
        assert_ne!(stroke(0, "b1"), stroke(2, "no answer"));
    }

    #[test]
    fn a_latency_chart_holds_a_curve_per_algorithm() {
        let curves = vec![
            series("round-robin", &[(1.0, 0.6), (21.0, 1.0)]),
            series("least-connections", &[(1.0, 0.9), (21.0, 1.0)]),
        ];
        let svg = latency_svg("slow: latency", &curves).unwrap();
        let (texts, lines) = texts_and_lines(&svg);
        for wanted in ["slow: latency", "round-robin", "least-connections"] {
            assert!(texts.iter().any(|t| t == wanted), "{wanted} in {texts:?}");
        }
        for index in 0..2 {
            let colour = svg_colour(algorithm_colour(index));
            assert!(lines.contains(&colour), "{colour} in {lines:?}");
        }
    }

    #[test]
    fn no_data_still_draws_a_chart() {
        let svg = latency_svg("empty", &[]).unwrap();
        texts_and_lines(&svg);
        let svg = shares_svg("empty", "share", &[]).unwrap();
        texts_and_lines(&svg);
    }
}
