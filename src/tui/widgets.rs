//! Small painters the dashboard's panels share: inline gauges for table cells, and the
//! formatting of ages, bit rates and clock times.

use std::time::SystemTime;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::capacity::NodeLoad;

/// Cells of the CPU gauge, and of the load gauge.
pub const CPU_BAR: usize = 8;
pub const LOAD_BAR: usize = 10;

const FILLED: &str = "█";
const EMPTY: &str = "░";
const MARK: &str = "│";

/// A bar of `width` cells, `fraction` of them filled, with the cell at `mark` (a fraction)
/// replaced by a marker. The marker cell is drawn as `│` whether or not the bar reaches it,
/// so the line stays visible; its colour says whether the bar is past it.
pub fn bar(fraction: f64, width: usize, mark: Option<f64>, style: Style) -> Vec<Span<'static>> {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        1.0
    };
    // Rounding to whole cells; the numbers beside the bar carry the precision.
    let filled = ((fraction * width as f64).round() as usize).min(width);
    let mark_at =
        mark.map(|m| ((m.clamp(0.0, 1.0) * width as f64).floor() as usize).min(width - 1));
    let empty_style = Style::new().fg(Color::DarkGray);
    let mut spans = Vec::with_capacity(3);
    let mut push = |text: String, style: Style| {
        if !text.is_empty() {
            spans.push(Span::styled(text, style));
        }
    };
    match mark_at {
        Some(at) => {
            let before = filled.min(at);
            push(FILLED.repeat(before), style);
            push(EMPTY.repeat(at - before), empty_style);
            let mark_style = if filled > at {
                style.add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(Color::Yellow)
            };
            push(MARK.to_owned(), mark_style);
            let after = filled.saturating_sub(at + 1);
            push(FILLED.repeat(after), style);
            push(EMPTY.repeat(width - at - 1 - after), empty_style);
        }
        None => {
            push(FILLED.repeat(filled), style);
            push(EMPTY.repeat(width - filled), empty_style);
        }
    }
    spans
}

/// Green, then yellow, then red as `fraction` nears and passes `limit`.
pub fn level_style(fraction: f64, limit: f64) -> Style {
    let colour = if fraction >= limit {
        Color::Red
    } else if fraction >= limit * 0.85 {
        Color::Yellow
    } else {
        Color::Green
    };
    Style::new().fg(colour)
}

/// `████░░░░  42%`: CPU of the whole machine.
pub fn cpu_gauge(cpu: f64) -> Line<'static> {
    let mut spans = bar(cpu, CPU_BAR, None, level_style(cpu, 0.90));
    spans.push(Span::raw(format!(
        " {:>3.0}%",
        (cpu * 100.0).clamp(0.0, 999.0)
    )));
    Line::from(spans)
}

/// `████░░░░│░  42% 84/200`: effective load over capacity, with `headroom` marked.
pub fn load_gauge(load: &NodeLoad, headroom: f64) -> Line<'static> {
    let utilisation = load.utilisation();
    let mut spans = bar(
        utilisation,
        LOAD_BAR,
        Some(headroom),
        level_style(utilisation, headroom),
    );
    spans.push(Span::raw(format!(
        " {:>3.0}% {:.0}/{}",
        (utilisation * 100.0).clamp(0.0, 999.0),
        load.effective(),
        load.capacity
    )));
    Line::from(spans)
}

/// `1.2 Mb/s`, `850 kb/s`, `0 b/s`.
pub fn bitrate(bps: u64) -> String {
    let b = bps as f64;
    if bps >= 1_000_000_000 {
        format!("{:.1} Gb/s", b / 1e9)
    } else if bps >= 1_000_000 {
        format!("{:.1} Mb/s", b / 1e6)
    } else if bps >= 1_000 {
        format!("{:.0} kb/s", b / 1e3)
    } else {
        format!("{bps} b/s")
    }
}

/// `20:15:34`, UTC.
pub fn clock(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    // "2026-03-21T20:15:34Z": the time of day sits at 11..19.
    text.get(11..19).unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(spans: &[Span<'_>]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn bars_fill_by_fraction_and_keep_the_mark() {
        let s = Style::new();
        assert_eq!(text(&bar(0.0, 10, Some(0.8), s)), "░░░░░░░░│░");
        assert_eq!(text(&bar(0.35, 10, Some(0.8), s)), "████░░░░│░");
        assert_eq!(text(&bar(0.85, 10, Some(0.8), s)), "████████│░");
        assert_eq!(text(&bar(0.95, 10, Some(0.8), s)), "████████│█");
        assert_eq!(text(&bar(3.0, 10, Some(0.8), s)), "████████│█");
        assert_eq!(text(&bar(f64::NAN, 4, None, s)), "████");
        assert_eq!(text(&bar(0.5, 8, None, s)), "████░░░░");
    }

    #[test]
    fn formats() {
        assert_eq!(bitrate(0), "0 b/s");
        assert_eq!(bitrate(850_000), "850 kb/s");
        assert_eq!(bitrate(1_250_000), "1.2 Mb/s");
        let t = humantime::parse_rfc3339("2026-03-21T20:15:34Z").unwrap();
        assert_eq!(clock(t), "20:15:34");
    }
}
