//! Paints the dashboard from [`App`]: a header, a banner while etcd is unreachable, the node
//! table, three panels below it (sessions of the selected node, pending demands, instances and
//! recordings,
//! the event log), a footer, and the help or confirmation dialogs over them. Only the rows
//! that fit on screen are built, whatever the size of the fleet.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use crate::capacity::Condition;
use crate::model::{InstanceState, RecordingState, SessionRecord};

use super::app::{App, Connection, HEADROOM_MARK, LogKind, Mode};
use super::event::KEYS_HELP;
use super::widgets::{bitrate, clock, cpu_gauge, load_gauge};
use crate::text::{short_age as age, short_bytes};

/// What the painter remembers between frames: the node table's scroll position, so the
/// view only scrolls when the selection would leave it.
#[derive(Debug, Default, Clone)]
pub struct View {
    nodes_offset: usize,
}

const HIGHLIGHT: &str = "▶ ";

pub fn draw(frame: &mut Frame<'_>, app: &App, view: &mut View) {
    let area = frame.area();
    let banner = matches!(app.connection(), Connection::Down { .. });
    let [header, banner_area, main, footer] = area.layout(&Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner)),
        Constraint::Min(0),
        Constraint::Length(1),
    ]));
    let bottom_height = (main.height * 2 / 5).clamp(6, 14).min(main.height / 2);
    let [nodes, bottom] = main.layout(&Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(bottom_height),
    ]));
    let [sessions, queue, events] = bottom.layout(&Layout::horizontal([
        Constraint::Percentage(34),
        Constraint::Percentage(22),
        Constraint::Percentage(44),
    ]));

    draw_header(frame, app, header);
    if banner {
        draw_banner(frame, app, banner_area);
    }
    draw_nodes(frame, app, view, nodes);
    draw_sessions(frame, app, sessions);
    draw_queue(frame, app, queue);
    draw_events(frame, app, events);
    draw_footer(frame, app, footer);
    match app.mode() {
        Mode::Help => draw_help(frame, area),
        Mode::ConfirmDrain(node) => draw_confirm(frame, app, node, area),
        Mode::Normal | Mode::Filter => {}
    }
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().fg(Color::DarkGray);
    let mut spans = vec![
        Span::styled(" ionctl top ", bold.fg(Color::Black).bg(Color::Cyan)),
        Span::raw(" "),
        Span::styled(app.source.clone(), dim),
        Span::raw(format!(
            "  {} nodes  {} sessions  {} pending",
            app.node_count(),
            app.session_count(),
            app.pending().len()
        )),
    ];
    if app.active_recordings() > 0 {
        spans.push(Span::raw(format!(
            "  {} recording",
            app.active_recordings()
        )));
    }
    spans.extend([
        Span::raw("  sort: "),
        Span::styled(app.sort().label(), bold),
    ]);
    if !app.filter().is_empty() {
        spans.push(Span::raw("  filter: "));
        spans.push(Span::styled(app.filter().to_owned(), bold));
    }
    if app.malformed() > 0 {
        spans.push(Span::styled(
            format!("  {} malformed keys", app.malformed()),
            Style::new().fg(Color::Yellow),
        ));
    }
    let left = Line::from(spans);
    let right = Line::from(Span::styled(format!("{} UTC ", clock(app.now)), dim)).right_aligned();
    frame.render_widget(&left, area);
    // The clock only when it does not cover the left part.
    if area.width as usize > left.width() + right.width() {
        frame.render_widget(right, area);
    }
}

fn draw_banner(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Connection::Down { since, error } = app.connection() else {
        return;
    };
    let down_for = app.now.duration_since(*since).unwrap_or_default();
    let text = format!(
        " etcd unreachable for {}, retrying; data as of {} UTC. {error}",
        age(down_for),
        clock(*since)
    );
    let style = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    frame.render_widget(Paragraph::new(text).style(style), area);
}

fn draw_nodes(frame: &mut Frame<'_>, app: &App, view: &mut View, area: Rect) {
    let rows = app.row_ids();
    let title = if app.filter().is_empty() {
        format!(" Nodes ({}) ", rows.len())
    } else {
        format!(" Nodes ({} of {}) ", rows.len(), app.node_count())
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .title(title)
        .title_bottom(
            Line::from(format!(
                " load: effective/capacity, │ = {:.0}% headroom ",
                HEADROOM_MARK * 100.0
            ))
            .right_aligned(),
        );
    let inner_height = usize::from(area.height.saturating_sub(3)); // borders and the header row
    // Scroll only as far as needed to keep the selection in view.
    let selected = app.selected_index();
    if let Some(selected) = selected {
        if selected < view.nodes_offset {
            view.nodes_offset = selected;
        } else if inner_height > 0 && selected >= view.nodes_offset + inner_height {
            view.nodes_offset = selected + 1 - inner_height;
        }
    }
    view.nodes_offset = view
        .nodes_offset
        .min(rows.len().saturating_sub(inner_height.max(1)));
    let end = (view.nodes_offset + inner_height).min(rows.len());
    let dim = Style::new().fg(Color::DarkGray);
    let body: Vec<Row<'_>> = (view.nodes_offset..end)
        .filter_map(|index| app.row(index))
        .map(|row| {
            let node = row.record;
            let (state, state_style) = if row.draining() {
                ("draining", Style::new().fg(Color::Yellow))
            } else if row.condition.refuses() {
                ("busy", Style::new().fg(Color::Red))
            } else if node.hold_for.is_some() {
                ("held", Style::new().fg(Color::Magenta))
            } else {
                ("ready", Style::new().fg(Color::Green))
            };
            let stats_age = node.stats_age(app.now);
            let age_style = if stats_age.as_secs() >= 15 {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Row::new(vec![
                Cell::from(node.id.clone()),
                Cell::from(Span::styled(state, state_style)),
                Cell::from(Span::styled(node.machine_type.clone(), dim)),
                Cell::from(cpu_gauge(node.stats.agent_cpu)),
                Cell::from(load_gauge(&row.load, HEADROOM_MARK)),
                Cell::from(Line::from(row.sessions.to_string()).right_aligned()),
                Cell::from(Line::from(node.stats.peers.to_string()).right_aligned()),
                Cell::from(Line::from(bitrate(node.stats.bitrate_out_bps)).right_aligned()),
                Cell::from(Line::from(Span::styled(age(stats_age), age_style)).right_aligned()),
            ])
        })
        .collect();
    let header = Row::new(vec![
        Cell::from("NODE"),
        Cell::from("STATE"),
        Cell::from("TYPE"),
        Cell::from("AGENT CPU"),
        Cell::from("LOAD"),
        Cell::from(Line::from("SESS").right_aligned()),
        Cell::from(Line::from("PEERS").right_aligned()),
        Cell::from(Line::from("OUT").right_aligned()),
        Cell::from(Line::from("AGE").right_aligned()),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    // The id column fits the longest id on screen; spare width stays at the right.
    let id_width = (view.nodes_offset..end)
        .filter_map(|i| rows.get(i))
        .map(|id| id.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 32) as u16;
    let widths = [
        Constraint::Length(id_width),
        Constraint::Length(8),
        Constraint::Length(14),
        Constraint::Length(13),
        Constraint::Length(26),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(4),
    ];
    let table = Table::new(body, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(HIGHLIGHT)
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .flex(Flex::Start);
    let mut state = TableState::default().with_selected(selected.map(|s| s - view.nodes_offset));
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let message = if !app.listed() {
            "connecting to etcd…"
        } else if app.node_count() > 0 {
            "no node matches the filter"
        } else {
            "no nodes registered under this prefix"
        };
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: u16::from(area.height > 3),
        };
        frame.render_widget(Paragraph::new(message).style(dim), inner);
    }
}

/// This node's part in a session that spans nodes: "origin+2" (with two edges) or "edge"
/// (`ionctl sessions` names the origin).
fn span_of(session: &SessionRecord, node: &str) -> String {
    if session.relays.is_empty() {
        String::new()
    } else if session.node == node {
        format!("origin+{}", session.relays.len())
    } else {
        "edge".to_owned()
    }
}

fn draw_sessions(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let selected = app.selected_index().and_then(|i| app.row(i));
    let Some(row) = selected else {
        frame.render_widget(Block::new().borders(Borders::ALL).title(" Sessions "), area);
        return;
    };
    let node = &row.record.id;
    let sessions = app.sessions_of(node);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(format!(" Sessions on {node} ({}) ", sessions.len()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Why placement passes the node over (or does not believe its CPU yet), above its
    // sessions, wrapped so the whole reason shows in a narrow panel.
    let area = if row.condition == Condition::Ok {
        inner
    } else {
        let style = if row.condition.refuses() {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Cyan)
        };
        let [note, rest] =
            Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(inner);
        frame.render_widget(
            Paragraph::new(row.condition.to_string())
                .style(style)
                .wrap(Wrap { trim: true }),
            note,
        );
        rest
    };
    if sessions.is_empty() {
        frame.render_widget(
            Paragraph::new("none").style(Style::new().fg(Color::DarkGray)),
            area,
        );
        return;
    }
    // The SPANS column only where a session on this node spans nodes: the panel is narrow.
    let spanning = sessions.iter().any(|s| !s.relays.is_empty());
    let rows = sessions.iter().map(|s| {
        let mut cells = vec![
            Cell::from(s.sid.clone()),
            Cell::from(s.class.to_string()),
            Cell::from(Line::from(s.size.to_string()).right_aligned()),
            Cell::from(Line::from(s.demand_on(node).to_string()).right_aligned()),
            Cell::from(s.state.to_string()),
        ];
        if spanning {
            cells.push(Cell::from(span_of(s, node)));
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Min(8),
        Constraint::Length(10),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(8),
    ];
    let mut header = vec![
        Cell::from("SID"),
        Cell::from("CLASS"),
        Cell::from(Line::from("SIZE").right_aligned()),
        Cell::from(Line::from("DEMAND").right_aligned()),
        Cell::from("STATE"),
    ];
    if spanning {
        widths.push(Constraint::Length(9));
        header.push(Cell::from("SPANS"));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)));
    frame.render_widget(table, area);
}

fn draw_queue(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let dim = Style::new().fg(Color::DarkGray);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled(
        format!("Pending ({})", app.pending().len()),
        bold,
    )];
    if app.pending().len() == 0 {
        lines.push(Line::styled("  none", dim));
    }
    for p in app.pending() {
        let waited = app.now.duration_since(p.since).unwrap_or_default();
        lines.push(Line::from(format!(
            "  {} {} {}×{}u {}",
            p.sid,
            p.class,
            p.size,
            p.demand,
            age(waited)
        )));
    }
    lines.push(Line::styled(
        format!("Instances ({})", app.instances().len()),
        bold,
    ));
    if app.instances().len() == 0 {
        lines.push(Line::styled("  none", dim));
    }
    for i in app.instances() {
        let state = match i.state {
            InstanceState::Creating => "creating",
            InstanceState::Booting => "booting",
            InstanceState::Ready => "ready",
            InstanceState::Deleting => "deleting",
        };
        let held = i
            .hold_for
            .as_ref()
            .map(|sid| format!(" for {sid}"))
            .unwrap_or_default();
        lines.push(Line::from(format!(
            "  {} {} {state}{held}",
            i.name, i.machine_type
        )));
        // Why a demand it was spawned for still waits, as the autoscaler last saw it.
        if let Some(note) = &i.note {
            lines.push(Line::styled(
                format!("    {note}"),
                Style::new().fg(Color::Yellow),
            ));
        }
    }
    lines.push(Line::styled(
        format!("Recordings ({})", app.recordings().len()),
        bold,
    ));
    if app.recordings().len() == 0 {
        lines.push(Line::styled("  none", dim));
    }
    for r in app.recordings() {
        let uploaded = match (r.bucket.is_some(), r.files.len()) {
            // Files go up once the recording stops.
            (true, files) if files > 0 && !r.state.is_active() => {
                format!(" up {}/{files}", r.uploaded())
            }
            _ => String::new(),
        };
        let text = format!(
            "  {} {} {} {} {}{uploaded}",
            r.sid,
            r.node,
            r.state.as_str(),
            age(r.duration(app.now)),
            short_bytes(r.bytes()),
        );
        let style = match r.state {
            RecordingState::Failed => Style::new().fg(Color::Red),
            _ => Style::new(),
        };
        lines.push(Line::styled(text, style));
        if let Some(error) = &r.error {
            lines.push(Line::styled(
                format!("    {error}"),
                Style::new().fg(Color::Red),
            ));
        }
    }
    let block = Block::new()
        .borders(Borders::ALL)
        .title(" Autoscale · recordings ");
    // Notes are sentences: wrap them rather than cut them at the panel's edge.
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_events(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::ALL).title(" Events (UTC) ");
    let height = usize::from(area.height.saturating_sub(2));
    let skip = app.log().len().saturating_sub(height);
    let lines: Vec<Line<'_>> = app
        .log()
        .skip(skip)
        .map(|entry| {
            let colour = match entry.kind {
                LogKind::NodeJoined | LogKind::DrainLifted => Color::Green,
                LogKind::NodeLeft | LogKind::Error => Color::Red,
                LogKind::DrainStarted | LogKind::DrainFinished => Color::Yellow,
                LogKind::SessionPlaced | LogKind::SessionEnded => Color::Cyan,
                LogKind::Info => Color::Gray,
            };
            Line::from(vec![
                Span::styled(clock(entry.at), Style::new().fg(Color::DarkGray)),
                Span::raw(" "),
                Span::styled(entry.text.clone(), Style::new().fg(colour)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_footer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let key = Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan);
    let left = match app.mode() {
        Mode::Filter => Line::from(vec![
            Span::styled(" filter: ", key),
            Span::raw(app.filter().to_owned()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::raw("   Enter keep · Esc clear"),
        ]),
        _ => {
            let mut spans = vec![Span::raw(" ")];
            for (k, what) in [
                ("↑↓", "select"),
                ("d", "drain"),
                ("u", "undrain"),
                ("s", "sort"),
                ("/", "filter"),
                ("?", "help"),
                ("q", "quit"),
            ] {
                spans.push(Span::styled(k, key));
                spans.push(Span::raw(format!(" {what}  ")));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(left.clone(), area);
    if let Some(status) = app.status() {
        let style = if status.error {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Green)
        };
        let right = Line::from(Span::styled(format!("{} ", status.text), style)).right_aligned();
        let free = (area.width as usize).saturating_sub(left.width());
        if free > 4 {
            let width = (right.width() as u16).min(free as u16);
            let x = area.x + area.width - width;
            frame.render_widget(right, Rect { x, width, ..area });
        }
    }
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let key = Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan);
    let mut lines: Vec<Line<'_>> = KEYS_HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), key),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::raw(format!(
        " LOAD is max(observed, committed) over capacity; │ marks {:.0}%.",
        HEADROOM_MARK * 100.0
    )));
    lines.push(Line::styled(
        " any key closes this help",
        Style::new().fg(Color::DarkGray),
    ));
    let height = lines.len() as u16 + 2;
    let rect = popup(area, 66, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" Keys ")),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame<'_>, app: &App, node: &str, area: Rect) {
    let sessions = app.sessions_of(node).len();
    let lines = vec![
        Line::from(vec![
            Span::raw(" Drain node "),
            Span::styled(node.to_owned(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw("?"),
        ]),
        Line::raw(""),
        Line::raw(match sessions {
            0 => " It takes no new sessions. It has none now.".to_owned(),
            1 => " It takes no new sessions; its 1 session continues.".to_owned(),
            n => format!(" It takes no new sessions; its {n} sessions continue."),
        }),
        Line::raw(""),
        Line::from(vec![
            Span::styled(
                " y",
                Style::new().add_modifier(Modifier::BOLD).fg(Color::Yellow),
            ),
            Span::raw(" drain    "),
            Span::styled(
                "n",
                Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan),
            ),
            Span::raw(" cancel"),
        ]),
    ];
    let rect = popup(area, 60, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title(" Drain ")),
        rect,
    );
}
