//! Bar charts as inline SVG, drawn on the server: no script, no external library. Each chart
//! is an image with a German title for screen readers; the numbers sit in a table beside it.

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 16.0;
/// Dark enough against white for WCAG's 3:1 for graphics.
const COLOURS: [&str; 3] = ["#004b87", "#a4000f", "#2d6a00"];

/// A coordinate with one decimal, as SVG attributes take it.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// Grouped bars: one group per label, one bar per series.
pub(crate) fn bars(title: &str, labels: &[String], series: &[(&str, Vec<f64>)]) -> Markup {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let plot_h = HEIGHT - BOTTOM - TOP;
    let group_w = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    let id = format!("chart-{:x}", fnv(title));
    html! {
        figure class="chart" {
            svg role="img" aria-labelledby=(id) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                xmlns="http://www.w3.org/2000/svg" {
                title id=(id) { (title) }
                // Axis and three grid lines with their values.
                @for step in 0..=2 {
                    @let value = top * f64::from(step) / 2.0;
                    @let y = TOP + plot_h - plot_h * f64::from(step) / 2.0;
                    line x1=(LEFT) y1=(at(y)) x2=(WIDTH) y2=(at(y)) stroke="#c8c8c8" {}
                    text x=(at(LEFT - 4.0)) y=(at(y + 4.0)) text-anchor="end" font-size="11" {
                        (format_number(value))
                    }
                }
                @for (g, label) in labels.iter().enumerate() {
                    @let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
                    @for (s, (name, values)) in series.iter().enumerate() {
                        @let v = values.get(g).copied().unwrap_or(0.0);
                        @let h = if top > 0.0 { plot_h * v / top } else { 0.0 };
                        rect x=(at(x0 + bar_w * s as f64)) y=(at(TOP + plot_h - h))
                            width=(at((bar_w - 1.0).max(1.0))) height=(at(h))
                            fill=(COLOURS[s % COLOURS.len()]) {
                            title { (label) ": " (format_number(v)) " (" (name) ")" }
                        }
                    }
                    text x=(at(x0 + group_w * 0.4)) y=(at(HEIGHT - BOTTOM + 16.0))
                        text-anchor="middle" font-size="11" { (label) }
                }
            }
            figcaption {
                (title)
                ul class="legend" {
                    @for (s, (name, _)) in series.iter().enumerate() {
                        li { span class="swatch" data-colour=(s) {} (name) }
                    }
                }
            }
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `max` (and 1 for an empty chart).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

fn format_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}").replace('.', ",")
    }
}

/// A stable id from the title (FNV-1a), so a page with several charts has distinct ids.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_a_round_maximum_and_name_every_value() {
        let svg = bars(
            "Sitzungen je Woche",
            &["2026-W47".to_owned(), "2026-W48".to_owned()],
            &[
                ("Sitzungen", vec![3.0, 7.0]),
                ("nicht erschienen", vec![1.0, 0.0]),
            ],
        )
        .into_string();
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id=\"chart-"));
        // 7 rounds up to a top of 10: the bar of 7 is 70 % of the plot height (164 px).
        assert!(svg.contains("height=\"114.8\""), "{svg}");
        assert!(svg.contains("2026-W48: 7 (Sitzungen)"));
        assert!(svg.contains(">10</text>"));
        assert!(svg.contains("<line x1=\"40\" y1=\"180.0\""), "{svg}");
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(format_number(2.5), "2,5");
    }
}
