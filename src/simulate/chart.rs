//! Charts of a report: nodes over the day per policy, and the load carried against each
//! policy's provisioned capacity, drawn with plotters' SVG backend; and the HTML page that
//! puts them beside the table.

use plotters::prelude::*;

use super::clock::HOUR;
use super::report::{Report, short_seconds};

const WIDTH: u32 = 1_000;
const PANEL: u32 = 360;

fn hours(at: u64) -> f64 {
    at as f64 / HOUR as f64
}

/// Both charts, one above the other, as one SVG document.
pub fn svg(report: &Report) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, 2 * PANEL)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (upper, lower) = root.split_vertically(PANEL);
        let span = report
            .policies
            .iter()
            .flat_map(|p| p.samples.last())
            .map(|s| hours(s.at))
            .fold(1.0, f64::max);
        let peak_nodes = report
            .policies
            .iter()
            .map(|p| p.peak_nodes)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut nodes = ChartBuilder::on(&upper)
            .caption("Nodes (up or booting)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..span, 0f64..f64::from(peak_nodes) * 1.1)
            .map_err(|e| e.to_string())?;
        nodes
            .configure_mesh()
            .x_desc("hour")
            .y_desc("nodes")
            .draw()
            .map_err(|e| e.to_string())?;
        for (index, policy) in report.policies.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            nodes
                .draw_series(LineSeries::new(
                    policy
                        .samples
                        .iter()
                        .map(|s| (hours(s.at), f64::from(s.nodes))),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(policy.policy.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        }
        nodes
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(|e| e.to_string())?;

        let peak_units = report
            .policies
            .iter()
            .flat_map(|p| p.samples.iter().map(|s| s.capacity.max(s.load)))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut load = ChartBuilder::on(&lower)
            .caption(
                "Load carried (black) and capacity provisioned (units)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..span, 0f64..peak_units as f64 * 1.05)
            .map_err(|e| e.to_string())?;
        load.configure_mesh()
            .x_desc("hour")
            .y_desc("units")
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some(first) = report.policies.first() {
            load.draw_series(LineSeries::new(
                first.samples.iter().map(|s| (hours(s.at), s.load as f64)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        }
        for (index, policy) in report.policies.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            load.draw_series(LineSeries::new(
                policy
                    .samples
                    .iter()
                    .map(|s| (hours(s.at), s.capacity as f64)),
                colour.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained page: the trace, the table and the charts.
pub fn html(report: &Report) -> Result<String, String> {
    let chart = svg(report)?;
    let mut rows = String::new();
    for p in &report.policies {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>${:.2}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>\n",
            escape(&p.policy),
            p.node_hours,
            p.ratio_to_bound,
            p.cost_on_demand,
            short_seconds(p.wait_p50_s),
            short_seconds(p.wait_p95_s),
            short_seconds(p.wait_p99_s),
            short_seconds(p.wait_max_s),
            p.refused + p.abandoned,
            p.dropped,
            p.overloaded,
            p.spawns,
            p.deletes,
            escape(&p.summary),
        ));
    }
    let t = &report.trace;
    Ok(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ionctl simulate</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{padding:2px 8px;text-align:right}}td:first-child,td:last-child,th:first-child,\
         th:last-child{{text-align:left}}tr:nth-child(even){{background:#f4f4f4}}</style>\
         </head><body>\n<h1>ionctl simulate</h1>\n<p>{} sessions from {}; demand {:.0} \
         unit-hours, peak {} units; fluid bound {:.1} node-hours of {} ({} units).</p>\n\
         <table><tr><th>policy</th><th>node-h</th><th>× bound</th><th>cost</th><th>wait p50 \
         s</th><th>p95</th><th>p99</th><th>max</th><th>refused</th><th>dropped</th>\
         <th>overloaded</th><th>spawns</th><th>deletes</th><th>what</th></tr>\n{rows}</table>\n\
         {chart}\n</body></html>\n",
        t.sessions,
        escape(&t.source),
        t.demand_unit_hours,
        t.peak_demand_units,
        t.fluid_bound_node_hours,
        t.reference_machine_type,
        t.reference_capacity_units,
    ))
}
