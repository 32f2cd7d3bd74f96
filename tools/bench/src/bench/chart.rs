//! The report's chart, drawn with plotters' SVG backend into a string:
//! per workload, `lb`'s CPU per request (or per GB) divided by the best
//! peer's, as bars, with a line at 1.0 (level) and one at the target.
//! The SVG backend writes text as `<text>` elements: no font is needed.

use std::fmt::Display;

use plotters::prelude::*;

/// The target lb aims for: 0.9 × the best peer's CPU.
pub const TARGET: f64 = 0.9;

/// The bars' colour (`#1F77B4`, as the bakeoff's first line).
pub const BAR_COLOUR: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
const LEVEL_COLOUR: RGBColor = RGBColor(0x00, 0x00, 0x00);
const TARGET_COLOUR: RGBColor = RGBColor(0x2C, 0xA0, 0x2C);

/// `#1F77B4`, as plotters writes a colour into SVG.
pub fn svg_colour(colour: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
}

fn draw_error(err: impl Display) -> String {
    format!("drawing the chart: {err}")
}

/// A bar per `(workload, ratio)`, in the order given.
pub fn ratios_svg(
    title: &str,
    bars: &[(String, f64)],
) -> Result<String, String> {
    if bars.is_empty() {
        return Err("drawing the chart: no figure to draw".into());
    }
    let top = bars
        .iter()
        .map(|(_, ratio)| *ratio)
        .filter(|ratio| ratio.is_finite())
        .fold(1.2_f64, f64::max)
        * 1.15;
    let width = (160 + 110 * bars.len() as u32).max(640);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let n = bars.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            // Room below zero for each bar's name.
            .build_cartesian_2d(0f64..n as f64, -top * 0.1..top)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|y| {
                if *y < 0.0 {
                    String::new()
                } else {
                    format!("{y:.1}")
                }
            })
            .y_desc("lb CPU ÷ best peer's")
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, ratio))| {
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.2, 0.0), (x + 0.8, ratio.clamp(0.0, top))],
                    BAR_COLOUR.filled(),
                )
            }))
            .map_err(draw_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, ratio))| {
                Text::new(
                    format!("{ratio:.2}"),
                    (i as f64 + 0.35, ratio.clamp(0.0, top) + top * 0.03),
                    ("sans-serif", 14),
                )
            }))
            .map_err(draw_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (name, _))| {
                Text::new(
                    name.clone(),
                    (i as f64 + 0.1, -top * 0.03),
                    ("sans-serif", 13),
                )
            }))
            .map_err(draw_error)?;
        for (level, colour, label) in [
            (1.0, LEVEL_COLOUR, "1.0: level with the best peer"),
            (TARGET, TARGET_COLOUR, "0.9: the target"),
        ] {
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    [(0.0, level), (n as f64, level)],
                    style,
                ))
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
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filled `<rect>`s in the bars' colour, and every `<text>`.
    fn bars_and_texts(svg: &str) -> (usize, Vec<String>) {
        let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let colour = svg_colour(BAR_COLOUR);
        let bars = doc
            .descendants()
            .filter(|node| node.has_tag_name("rect"))
            .filter(|node| node.attribute("fill") == Some(colour.as_str()))
            .count();
        let texts = doc
            .descendants()
            .filter(|node| node.has_tag_name("text"))
            .filter_map(|node| node.text().map(|text| text.trim().to_owned()))
            .collect();
        (bars, texts)
    }

    #[test]
    fn one_bar_per_workload_and_both_lines_labelled() {
        let bars: Vec<(String, f64)> = [
            ("kept-alive", 1.06),
            ("new connection", 1.13),
            ("bulk", 0.87),
            ("TLS handshake", 0.61),
        ]
        .iter()
        .map(|(name, ratio)| (name.to_string(), *ratio))
        .collect();
        let svg = ratios_svg("lb ÷ best peer", &bars).unwrap();
        let (count, texts) = bars_and_texts(&svg);
        assert_eq!(count, bars.len(), "{svg}");
        for expected in
            ["kept-alive", "TLS handshake", "0.87", "0.9: the target"]
        {
            assert!(
                texts.iter().any(|t| t == expected),
                "{expected}: {texts:?}"
            );
        }
        assert!(ratios_svg("empty", &[]).is_err());
    }
}
