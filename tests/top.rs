//! `ionctl top` without a terminal: model → screen through ratatui's `TestBackend`, compared
//! with `Buffer::with_lines` (text) and cell styles (gauge colours), and the model under 500
//! synthetic nodes.

use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ion_cluster::model::{
    DrainRequest, NodeRecord, PendingDemand, RecordedFile, RecordingRecord, RecordingState,
    SessionClass, SessionRecord, SessionState,
};
use ion_cluster::store::Change;
use ion_cluster::tui::app::{Connection, LogKind, Mode};
use ion_cluster::tui::{Action, App, Delta, Event, Listing, SortKey, View, draw, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Position;
use ratatui::style::{Color, Style};

/// 2026-03-21T20:15:00Z: every test's clock.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_774_124_100)
}

fn node(id: &str, capacity: u32, cpu: f64) -> NodeRecord {
    NodeRecord {
        zone: "europe-west1-b".to_owned(),
        started_at: t0() - Duration::from_secs(3600),
        ..NodeRecord::blank(
            id,
            "n2-highcpu-4",
            4,
            capacity,
            t0() - Duration::from_secs(2),
        )
    }
    .spending(cpu)
}

fn session(sid: &str, node: &str, size: u32, demand: u32) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Meeting,
        size,
        demand,
        node: node.to_owned(),
        state: SessionState::Live,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: t0() - Duration::from_secs(60),
    }
}

fn listing(nodes: Vec<NodeRecord>, sessions: Vec<SessionRecord>) -> Listing {
    Listing {
        revision: 10,
        nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        sessions: sessions.into_iter().map(|s| (s.sid.clone(), s)).collect(),
        ..Listing::default()
    }
}

/// Three nodes: a busy one above the headroom line, one whose committed sessions exceed what
/// its CPU shows, and an idle one whose agent's CPU is not load (it carries nothing).
fn three_nodes() -> App {
    let mut busy = node("sfu-busy", 400, 0.90);
    busy.stats.peers = 120;
    busy.stats.bitrate_out_bps = 60_000_000;
    let mut booked = node("sfu-booked", 200, 0.10);
    booked.machine_type = "n2-highcpu-2".to_owned();
    booked.stats.peers = 20;
    booked.stats.bitrate_out_bps = 850_000;
    let mut idle = node("sfu-idle", 800, 0.05);
    idle.machine_type = "n2-highcpu-8".to_owned();
    idle.updated_at = t0() - Duration::from_secs(30);
    let sessions = vec![
        session("standup", "sfu-booked", 10, 90),
        session("retro", "sfu-booked", 4, 12),
        session("allhands", "sfu-busy", 50, 200),
    ];
    let mut app = App::new("http://127.0.0.1:2379 /ion/v1/", t0());
    update(
        &mut app,
        Event::Listing(Box::new(listing(vec![busy, booked, idle], sessions))),
    );
    app
}

fn key(app: &mut App, code: KeyCode) -> Option<Action> {
    update(app, Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn keys(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn render(app: &mut App, width: u16, height: u16) -> Buffer {
    app.refresh();
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    let mut view = View::default();
    terminal
        .draw(|frame| draw(frame, app, &mut view))
        .expect("drawing");
    terminal.backend().buffer().clone()
}

/// The buffer with every style reset, to compare text with `Buffer::with_lines`.
fn text_of(buffer: &Buffer) -> Buffer {
    let mut plain = buffer.clone();
    for cell in &mut plain.content {
        cell.set_style(Style::reset());
    }
    plain
}

fn lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The node ids in the table, top to bottom.
fn table_order(buffer: &Buffer) -> Vec<String> {
    lines(buffer)
        .iter()
        .filter_map(|line| {
            let cell = line.get(line.find('│')? + '│'.len_utf8()..)?;
            let id = cell.trim_start_matches(['▶', ' ']).split(' ').next()?;
            id.starts_with("sfu-").then(|| id.to_owned())
        })
        .collect()
}

fn find(buffer: &Buffer, text: &str) -> Option<Position> {
    lines(buffer).iter().enumerate().find_map(|(y, line)| {
        let byte = line.find(text)?;
        let x = line[..byte].chars().count();
        Some(Position::new(x as u16, y as u16))
    })
}

#[test]
fn whole_screen_with_gauges_headroom_mark_and_committed_load() {
    let mut app = three_nodes();
    let screen = render(&mut app, 112, 20);
    let expected = Buffer::with_lines([
        " ionctl top  http://127.0.0.1:2379 /ion/v1/  3 nodes  3 sessions  0 pending  sort: load            20:15:00 UTC ",
        "┌ Nodes (3) ───────────────────────────────────────────────────────────────────────────────────────────────────┐",
        "│  NODE       STATE    TYPE           AGENT CPU     LOAD                       SESS PEERS        OUT  AGE      │",
        "│▶ sfu-busy   ready    n2-highcpu-4   ███████░  90% ████████│░  90% 360/400       1   120  60.0 Mb/s   2s      │",
        "│  sfu-booked ready    n2-highcpu-2   █░░░░░░░  10% █████░░░│░  51% 102/200       2    20   850 kb/s   2s      │",
        "│  sfu-idle   ready    n2-highcpu-8   ░░░░░░░░   5% ░░░░░░░░│░   0% 0/800         0     0      0 b/s  30s      │",
        "│                                                                                                              │",
        "│                                                                                                              │",
        "│                                                                                                              │",
        "│                                                                                                              │",
        "│                                                                                                              │",
        "└────────────────────────────────────────────────────────────────── load: effective/capacity, │ = 80% headroom ┘",
        "┌ Sessions on sfu-busy (1) ──────────┐┌ Autoscale · recordings┐┌ Events (UTC) ─────────────────────────────────┐",
        "│SID      CLASS    SIZE DEMAND STATE ││Pending (0)            ││20:15:00 listed 3 nodes, 3 sessions            │",
        "│allhands meeting    50    200 live  ││  none                 ││                                               │",
        "│                                    ││Instances (0)          ││                                               │",
        "│                                    ││  none                 ││                                               │",
        "│                                    ││Recordings (0)         ││                                               │",
        "└────────────────────────────────────┘└───────────────────────┘└───────────────────────────────────────────────┘",
        " ↑↓ select  d drain  u undrain  s sort  / filter  ? help  q quit                                                ",
    ]);
    assert_eq!(
        text_of(&screen),
        expected,
        "\n{}",
        lines(&screen).join("\n")
    );
}

#[test]
fn gauges_are_coloured_by_headroom_and_stale_stats_are_red() {
    let mut app = three_nodes();
    let screen = render(&mut app, 112, 20);
    // sfu-busy's load bar (90%) is past the 80% line: red, and so is the mark it covers.
    let busy = find(&screen, "████████│░  90%").expect("busy load gauge");
    assert_eq!(screen[busy].fg, Color::Red);
    let mark = Position::new(busy.x + 8, busy.y);
    assert_eq!(screen[mark].symbol(), "│");
    assert_eq!(screen[mark].fg, Color::Red);
    // sfu-booked (51%, from committed sessions): green bar, grey rest, yellow mark.
    let booked = find(&screen, "█████░░░│░  51%").expect("booked load gauge");
    assert_eq!(screen[booked].fg, Color::Green);
    assert_eq!(
        screen[Position::new(booked.x + 5, booked.y)].fg,
        Color::DarkGray
    );
    assert_eq!(
        screen[Position::new(booked.x + 8, booked.y)].fg,
        Color::Yellow
    );
    // sfu-idle's stats are 30 s old.
    let age = find(&screen, "30s").expect("stats age");
    assert_eq!(screen[age].fg, Color::Red);
}

#[test]
fn s_cycles_the_sort_through_load_cpu_sessions_and_name() {
    let mut app = three_nodes();
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-busy", "sfu-booked", "sfu-idle"]);

    // Selection follows the node, not the row.
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.selected(), Some("sfu-booked"));

    let expected = [
        (SortKey::Cpu, "cpu", ["sfu-busy", "sfu-booked", "sfu-idle"]),
        (
            SortKey::Sessions,
            "sessions",
            ["sfu-booked", "sfu-busy", "sfu-idle"],
        ),
        (
            SortKey::Name,
            "name",
            ["sfu-booked", "sfu-busy", "sfu-idle"],
        ),
        (
            SortKey::Load,
            "load",
            ["sfu-busy", "sfu-booked", "sfu-idle"],
        ),
    ];
    for (sort, label, order) in expected {
        key(&mut app, KeyCode::Char('s'));
        assert_eq!(app.sort(), sort);
        let screen = render(&mut app, 112, 20);
        assert!(
            lines(&screen)[0].contains(&format!("sort: {label}")),
            "{}",
            lines(&screen)[0]
        );
        assert_eq!(table_order(&screen), order, "sorted by {label}");
        assert_eq!(app.selected(), Some("sfu-booked"));
        let row = find(&screen, "▶ sfu-booked").expect("the selection marker");
        assert_eq!(screen[row].fg, Color::Reset);
    }

    // CPU order differs from load order when committed sessions dominate.
    app.set_sort(SortKey::Cpu);
    let mut changes = vec![Delta::Node(Change::Put {
        id: "sfu-idle".to_owned(),
        record: node("sfu-idle", 800, 0.50),
        revision: 11,
    })];
    changes.push(Delta::Session(Change::Put {
        id: "big".to_owned(),
        record: session("big", "sfu-booked", 20, 100),
        revision: 12,
    }));
    update(&mut app, Event::Changes(changes));
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-busy", "sfu-idle", "sfu-booked"]);
    app.set_sort(SortKey::Load);
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-booked", "sfu-busy", "sfu-idle"]);
    assert!(
        find(&screen, "████████│█ 101% 202/200").is_some(),
        "{}",
        lines(&screen).join("\n")
    );
}

#[test]
fn slash_filters_by_id_type_zone_or_state() {
    let mut app = three_nodes();
    keys(&mut app, "/highcpu-8");
    assert_eq!(app.mode(), &Mode::Filter);
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-idle"]);
    let all = lines(&screen);
    assert!(all[1].contains("Nodes (1 of 3)"), "{}", all[1]);
    assert!(all[0].contains("filter: highcpu-8"), "{}", all[0]);
    assert!(all[19].starts_with(" filter: highcpu-8█"), "{}", all[19]);
    // The selection moved to the only row, and the sessions panel follows it.
    assert_eq!(app.selected(), Some("sfu-idle"));
    assert!(all[12].contains("Sessions on sfu-idle (0)"), "{}", all[12]);

    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode(), &Mode::Normal);
    assert_eq!(app.filter(), "highcpu-8");

    // Nothing matches: the table says so.
    keys(&mut app, "/x");
    let screen = render(&mut app, 112, 20);
    assert!(table_order(&screen).is_empty());
    assert!(find(&screen, "no node matches the filter").is_some());

    // Esc while typing clears the filter; the state is searchable too.
    key(&mut app, KeyCode::Esc);
    update(
        &mut app,
        Event::Changes(vec![Delta::Drain(Change::Put {
            id: "sfu-busy".to_owned(),
            record: DrainRequest {
                requested_at: t0(),
                deadline: None,
                reason: Some("upgrade".to_owned()),
            },
            revision: 20,
        })]),
    );
    keys(&mut app, "/DRAIN");
    key(&mut app, KeyCode::Enter);
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-busy"]);
    assert!(
        lines(&screen)[3].contains("▶ sfu-busy draining"),
        "{}",
        lines(&screen)[3]
    );
}

#[test]
fn banner_while_etcd_is_unreachable_and_gone_after_a_new_listing() {
    let mut app = three_nodes();
    update(&mut app, Event::Tick(t0() + Duration::from_secs(5)));
    update(
        &mut app,
        Event::Disconnected(
            "cannot reach etcd at http://127.0.0.1:2379: connection refused".to_owned(),
        ),
    );
    update(&mut app, Event::Tick(t0() + Duration::from_secs(17)));
    let screen = render(&mut app, 112, 20);
    let all = lines(&screen);
    assert_eq!(
        all[1],
        " etcd unreachable for 12s, retrying; data as of 20:15:05 UTC. cannot reach etcd at http://127.0.0.1:2379: connec"
    );
    assert_eq!(screen[(0, 1)].bg, Color::Red);
    // The last data stays on screen under the banner.
    assert_eq!(table_order(&screen), ["sfu-busy", "sfu-booked", "sfu-idle"]);
    assert!(matches!(app.connection(), Connection::Down { .. }));

    // A second failure does not restart the clock.
    update(&mut app, Event::Disconnected("still refused".to_owned()));
    let screen = render(&mut app, 112, 20);
    assert!(
        lines(&screen)[1].contains("for 12s"),
        "{}",
        lines(&screen)[1]
    );

    // etcd is back: one node left meanwhile, one joined, a session ended.
    let mut listed = listing(
        vec![node("sfu-busy", 400, 0.90), node("sfu-new", 200, 0.0)],
        vec![session("allhands", "sfu-busy", 50, 200)],
    );
    listed.revision = 40;
    update(&mut app, Event::Listing(Box::new(listed)));
    let screen = render(&mut app, 112, 20);
    assert!(
        lines(&screen)[1].starts_with("┌ Nodes (2)"),
        "{}",
        lines(&screen)[1]
    );
    assert_eq!(app.connection(), &Connection::Up);
    let log: Vec<(LogKind, &str)> = app.log().map(|e| (e.kind, e.text.as_str())).collect();
    for wanted in [
        (LogKind::NodeLeft, "node sfu-booked left"),
        (LogKind::NodeLeft, "node sfu-idle left"),
        (
            LogKind::NodeJoined,
            "node sfu-new joined (n2-highcpu-4, 200u)",
        ),
        (LogKind::SessionEnded, "session standup ended on sfu-booked"),
        (LogKind::Info, "etcd is back; listed again"),
    ] {
        assert!(log.contains(&wanted), "{wanted:?} missing from {log:#?}");
    }
    assert_eq!(app.revision(), 40);
}

#[test]
fn d_asks_first_and_only_y_drains() {
    let mut app = three_nodes();
    key(&mut app, KeyCode::Down);
    assert_eq!(key(&mut app, KeyCode::Char('d')), None);
    assert_eq!(app.mode(), &Mode::ConfirmDrain("sfu-booked".to_owned()));
    let screen = render(&mut app, 112, 20);
    let all = lines(&screen);
    let dialog = find(&screen, "Drain node sfu-booked?").expect("the dialog");
    assert!(
        all[usize::from(dialog.y) + 2]
            .contains("It takes no new sessions; its 2 sessions continue."),
        "{}",
        all.join("\n")
    );

    // Anything but y cancels.
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.mode(), &Mode::Normal);
    key(&mut app, KeyCode::Char('d'));
    let action = key(&mut app, KeyCode::Char('y'));
    assert_eq!(action, Some(Action::Drain("sfu-booked".to_owned())));
    assert_eq!(app.mode(), &Mode::Normal);

    update(
        &mut app,
        Event::Done {
            action: Action::Drain("sfu-booked".to_owned()),
            result: Ok("drain requested for sfu-booked".to_owned()),
        },
    );
    let screen = render(&mut app, 112, 20);
    assert!(lines(&screen)[19].ends_with("drain requested for sfu-booked "));

    // u undrains without asking; a failure is shown in red and logged.
    assert_eq!(
        key(&mut app, KeyCode::Char('u')),
        Some(Action::Undrain("sfu-booked".to_owned()))
    );
    update(
        &mut app,
        Event::Done {
            action: Action::Undrain("sfu-booked".to_owned()),
            result: Err("etcd unreachable".to_owned()),
        },
    );
    let screen = render(&mut app, 112, 20);
    let at = find(&screen, "undrain sfu-booked failed: etcd unreachable").expect("status");
    assert_eq!(screen[at].fg, Color::Red);
}

#[test]
fn event_log_reports_joins_drains_and_sessions() {
    let mut app = three_nodes();
    let drain = DrainRequest {
        requested_at: t0(),
        deadline: None,
        reason: Some("upgrade".to_owned()),
    };
    update(&mut app, Event::Tick(t0() + Duration::from_secs(1)));
    update(
        &mut app,
        Event::Changes(vec![
            Delta::Node(Change::Put {
                id: "sfu-new".to_owned(),
                record: node("sfu-new", 200, 0.0),
                revision: 11,
            }),
            Delta::Drain(Change::Put {
                id: "sfu-booked".to_owned(),
                record: drain,
                revision: 12,
            }),
            Delta::Session(Change::Put {
                id: "lesson".to_owned(),
                record: session("lesson", "sfu-new", 6, 30),
                revision: 13,
            }),
            Delta::Session(Change::Deleted {
                id: "standup".to_owned(),
                revision: 14,
            }),
            Delta::Session(Change::Deleted {
                id: "retro".to_owned(),
                revision: 15,
            }),
            Delta::Drain(Change::Deleted {
                id: "sfu-booked".to_owned(),
                revision: 16,
            }),
            Delta::Node(Change::Deleted {
                id: "sfu-idle".to_owned(),
                revision: 17,
            }),
            Delta::Pending(Change::Put {
                id: "webinar".to_owned(),
                record: PendingDemand {
                    sid: "webinar".to_owned(),
                    class: SessionClass::Conference,
                    size: 200,
                    demand: 1194,
                    machine_type: Some("n2-highcpu-16".to_owned()),
                    since: t0() - Duration::from_secs(9),
                },
                revision: 18,
            }),
        ]),
    );
    assert_eq!(app.revision(), 18);
    let screen = render(&mut app, 160, 36);
    let all = lines(&screen);
    let top = find(&screen, "Events (UTC)").expect("the events panel");
    let events: Vec<String> = all[usize::from(top.y) + 1..usize::from(top.y) + 11]
        .iter()
        .map(|l| {
            let inside: String = l.chars().skip(usize::from(top.x) - 1).collect();
            inside.trim_end_matches('│').trim_end().to_owned()
        })
        .collect();
    let expected = [
        "20:15:00 listed 3 nodes, 3 sessions",
        "20:15:01 node sfu-new joined (n2-highcpu-4, 200u)",
        "20:15:01 drain started on sfu-booked (upgrade)",
        "20:15:01 session lesson placed on sfu-new (meeting 6, 30u)",
        "20:15:01 session standup ended on sfu-booked",
        "20:15:01 session retro ended on sfu-booked",
        "20:15:01 drain finished on sfu-booked: no sessions",
        "20:15:01 drain lifted on sfu-booked",
        "20:15:01 node sfu-idle left",
        "",
    ];
    assert_eq!(events, expected, "{}", all.join("\n"));
    assert!(
        find(&screen, "webinar conference 200×1194u 10s").is_some(),
        "{}",
        all.join("\n")
    );
}

#[test]
fn any_size_draws_without_panicking_and_resizing_keeps_the_selection() {
    let mut app = three_nodes();
    key(&mut app, KeyCode::Char('G'));
    for (w, h) in [(1, 1), (10, 3), (40, 8), (80, 24), (200, 60), (112, 20)] {
        let screen = render(&mut app, w, h);
        assert_eq!(screen.area.width, w);
    }
    keys(&mut app, "?");
    render(&mut app, 30, 6);
    let screen = render(&mut app, 112, 30);
    assert!(find(&screen, "sort by load, CPU, sessions, name").is_some());
    assert_eq!(app.selected(), Some("sfu-idle"));
}

// ---- 500 nodes ----

fn fleet(n: usize) -> (Vec<NodeRecord>, Vec<SessionRecord>) {
    let nodes: Vec<NodeRecord> = (0..n)
        .map(|i| {
            let capacity = [200, 400, 800, 1600][i % 4];
            // A spread of CPU that is not in id order.
            let cpu = ((i * 37) % 100) as f64 / 100.0;
            let mut record = node(&format!("sfu-{i:03}"), capacity, cpu);
            record.machine_type = [
                "n2-highcpu-2",
                "n2-highcpu-4",
                "n2-highcpu-8",
                "n2-highcpu-16",
            ][i % 4]
                .to_owned();
            record
        })
        .collect();
    let sessions = (0..4 * n)
        .map(|i| {
            session(
                &format!("s{i:04}"),
                &format!("sfu-{:03}", (i * 7) % n),
                6,
                30,
            )
        })
        .collect();
    (nodes, sessions)
}

#[test]
fn five_hundred_nodes_sort_filter_scroll_and_batch() {
    let (nodes, sessions) = fleet(500);
    let mut app = App::new("test", t0());
    update(
        &mut app,
        Event::Listing(Box::new(listing(nodes.clone(), sessions))),
    );
    app.refresh();
    assert_eq!(app.row_ids().len(), 500);
    assert_eq!(app.session_count(), 2000);

    // Load order: utilisation never rises down the table.
    let utilisation: Vec<f64> = (0..500)
        .map(|i| app.row(i).expect("row").load.utilisation())
        .collect();
    assert!(
        utilisation.windows(2).all(|w| w[0] >= w[1]),
        "not sorted by load"
    );
    // Committed units: 4 sessions of 30 units on every node.
    assert!((0..500).all(|i| app.row(i).expect("row").load.committed == 120));

    // Every node reports new stats; one batch, one rebuild.
    let before = app.rebuilds();
    let started = Instant::now();
    let changes: Vec<Delta> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut record = n.clone();
            record.stats.cpu = ((i * 53) % 100) as f64 / 100.0;
            record.stats.observed_units = record.stats.cpu * f64::from(record.capacity);
            Delta::Node(Change::Put {
                id: record.id.clone(),
                record,
                revision: 100 + i as i64,
            })
        })
        .collect();
    update(&mut app, Event::Changes(changes));
    app.refresh();
    app.refresh();
    assert_eq!(app.rebuilds(), before + 1);
    let utilisation: Vec<f64> = (0..500)
        .map(|i| app.row(i).expect("row").load.utilisation())
        .collect();
    assert!(
        utilisation.windows(2).all(|w| w[0] >= w[1]),
        "not re-sorted"
    );

    // Drawing builds only the rows on screen: 500 nodes draw about as fast as 3.
    let screen = render(&mut app, 120, 40);
    assert!(lines(&screen)[0].contains("500 nodes  2000 sessions"));
    let frames = 20;
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    let mut view = View::default();
    for _ in 0..frames {
        update(&mut app, Event::Tick(t0()));
        app.refresh();
        terminal
            .draw(|frame| draw(frame, &app, &mut view))
            .expect("drawing");
    }
    let per_frame = started.elapsed() / frames;
    // Generous for a debug build on a busy machine; a redraw per change must stay far below.
    assert!(
        per_frame < Duration::from_millis(250),
        "{per_frame:?} per frame"
    );

    // Scroll to the end and back: the selection stays on screen.
    key(&mut app, KeyCode::Char('G'));
    let last = app.row_ids()[499].clone();
    assert_eq!(app.selected(), Some(last.as_str()));
    terminal
        .draw(|frame| draw(frame, &app, &mut view))
        .expect("drawing");
    let screen = terminal.backend().buffer().clone();
    assert!(
        find(&screen, &format!("▶ {last}")).is_some(),
        "{}",
        lines(&screen).join("\n")
    );
    for _ in 0..30 {
        key(&mut app, KeyCode::Char('k'));
    }
    terminal
        .draw(|frame| draw(frame, &app, &mut view))
        .expect("drawing");
    let screen = terminal.backend().buffer().clone();
    let selected = app.selected().expect("a selection").to_owned();
    assert!(find(&screen, &format!("▶ {selected}")).is_some());
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.selected(), Some(app.row_ids()[0].as_str()));

    // Filter: the 125 n2-highcpu-16 nodes, then one id.
    keys(&mut app, "/highcpu-16");
    app.refresh();
    assert_eq!(app.row_ids().len(), 125);
    key(&mut app, KeyCode::Esc);
    keys(&mut app, "/sfu-123");
    key(&mut app, KeyCode::Enter);
    app.refresh();
    assert_eq!(app.row_ids(), ["sfu-123"]);
    assert_eq!(app.sessions_of("sfu-123").len(), 4);

    // Sessions move and end; committed units follow.
    let ended: Vec<Delta> = app
        .sessions_of("sfu-123")
        .iter()
        .map(|s| {
            Delta::Session(Change::Deleted {
                id: s.sid.clone(),
                revision: 1000,
            })
        })
        .collect();
    update(&mut app, Event::Changes(ended));
    app.refresh();
    assert_eq!(app.row(0).expect("row").load.committed, 0);
    assert_eq!(app.session_count(), 1996);
}

#[test]
fn a_listing_after_reconnect_applies_only_the_difference() {
    let (nodes, sessions) = fleet(500);
    let mut app = App::new("test", t0());
    update(
        &mut app,
        Event::Listing(Box::new(listing(nodes.clone(), sessions.clone()))),
    );
    let logged = app.log().len();
    update(&mut app, Event::Disconnected("gone".to_owned()));
    // The same cluster again: nothing to log but the outage and the recovery.
    update(&mut app, Event::Listing(Box::new(listing(nodes, sessions))));
    assert_eq!(app.log().len(), logged + 2);
    app.refresh();
    assert_eq!(app.row_ids().len(), 500);
}

#[test]
fn a_busy_host_and_a_demand_waiting_for_its_instance_are_explained() {
    // sfu-crowded's host is saturated by other processes: state busy, and the reason under its
    // sessions. The instance spawned for ls1 says why ls1 still waits.
    let mut crowded = node("sfu-crowded", 400, 0.02);
    crowded.stats.cpu = 0.97;
    crowded.stats.other_cpu = 0.96;
    let instance = ion_cluster::model::InstanceRecord {
        name: "ion-ls1".to_owned(),
        provider: "local".to_owned(),
        zone: "local".to_owned(),
        machine_type: "n2-highcpu-4".to_owned(),
        hold_for: Some("ls1".to_owned()),
        demands: vec!["ls1".to_owned()],
        state: ion_cluster::model::InstanceState::Ready,
        created_at: t0() - Duration::from_secs(30),
        registered_at: Some(t0() - Duration::from_secs(20)),
        note: Some("ls1 waits: ion-ls1 is draining".to_owned()),
    };
    let mut app = App::new("test", t0());
    update(
        &mut app,
        Event::Listing(Box::new(Listing {
            revision: 3,
            nodes: vec![("sfu-crowded".to_owned(), crowded)],
            instances: vec![("ion-ls1".to_owned(), instance)],
            ..Listing::default()
        })),
    );
    let screen = render(&mut app, 150, 32);
    let text = lines(&screen).join("\n");
    let row = find(&screen, "sfu-crowded").expect("the node row");
    let state = find(&screen, "busy ").expect("a busy state");
    assert_eq!(state.y, row.y, "{text}");
    assert_eq!(screen[state].fg, Color::Red);
    // The panels wrap their sentences: each piece is on screen, the reason in red.
    for piece in [
        "host busy: other processes use 96% of its CPU",
        "(limit 90%)",
        "ion-ls1 n2-highcpu-4 ready",
        "for ls1",
        "ls1 waits: ion-ls1 is",
        "draining",
    ] {
        assert!(find(&screen, piece).is_some(), "{piece:?} missing:\n{text}");
    }
    let reason = find(&screen, "host busy").expect("the reason");
    assert_eq!(screen[reason].fg, Color::Red);
    let note = find(&screen, "ls1 waits").expect("the note");
    assert_eq!(screen[note].fg, Color::Yellow);
}

#[test]
fn a_spanning_livestream_shows_on_its_origin_and_each_edge_with_its_share() {
    let mut live = session("launch", "sfu-origin", 300, 151);
    live.class = SessionClass::Livestream;
    live.relays = vec!["sfu-edge".to_owned()];
    live.edge_demand = 150;
    let mut app = App::new("http://127.0.0.1:2379 /ion/v1/", t0());
    update(
        &mut app,
        Event::Listing(Box::new(listing(
            vec![node("sfu-edge", 200, 0.0), node("sfu-origin", 200, 0.0)],
            vec![live],
        ))),
    );
    // Each node counts its share as committed load.
    assert_eq!(app.sessions_of("sfu-edge").len(), 1);
    assert_eq!(app.sessions_of("sfu-origin").len(), 1);
    let part = |app: &App| match app.selected() {
        Some("sfu-edge") => ("150", " edge"),
        Some("sfu-origin") => ("151", "origin+1"),
        other => panic!("selected {other:?}"),
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let screen = render(&mut app, 160, 36);
        let (demand, spans) = part(&app);
        let row = lines(&screen)
            .into_iter()
            .find(|l| l.contains("launch"))
            .expect("the session row");
        assert!(row.contains(demand) && row.contains(spans), "{row}");
        seen.push(spans);
        key(&mut app, KeyCode::Down);
    }
    seen.sort_unstable();
    assert_eq!(seen, [" edge", "origin+1"]);
}

fn recording(sid: &str, state: RecordingState) -> RecordingRecord {
    RecordingRecord {
        sid: sid.to_owned(),
        node: "rec-1".to_owned(),
        reservation: RecordingRecord::reservation_for(sid),
        state,
        bucket: Some("gs://calls".to_owned()),
        stop_requested: false,
        requested_at: t0() - Duration::from_secs(100),
        started_at: Some(t0() - Duration::from_secs(90)),
        stopped_at: None,
        dir: Some(format!("/var/lib/ion-agent/recordings/{sid}")),
        files: vec![
            RecordedFile {
                name: "alice.webm".to_owned(),
                uid: "alice".to_owned(),
                bytes: 2_500_000,
                duration_ms: 90_000,
                uploaded: None,
            },
            RecordedFile {
                name: "bob.webm".to_owned(),
                uid: "bob".to_owned(),
                bytes: 1_100_000,
                duration_ms: 89_000,
                uploaded: None,
            },
        ],
        error: None,
    }
}

/// Recordings show in the autoscale panel (session, node, state, duration, size, upload
/// progress), running ones are counted in the header, and a failure is logged and shown in
/// red with its cause.
#[test]
fn recordings_show_with_their_state_size_and_a_failure_s_cause() {
    let mut app = App::new("test", t0());
    let running = recording("standup", RecordingState::Recording);
    let mut uploading = recording("allhands", RecordingState::Uploading);
    uploading.files[0].uploaded = Some("gs://calls/allhands/alice.webm".to_owned());
    update(
        &mut app,
        Event::Listing(Box::new(Listing {
            revision: 3,
            nodes: vec![("rec-1".to_owned(), node("rec-1", 400, 0.1))],
            recordings: vec![
                ("standup".to_owned(), running.clone()),
                ("allhands".to_owned(), uploading),
            ],
            ..Listing::default()
        })),
    );
    let screen = render(&mut app, 160, 36);
    let text = lines(&screen).join("\n");
    for piece in [
        "1 recording",
        "Recordings (2)",
        // The panel is narrow: lines wrap.
        "standup rec-1 recording 90s",
        "allhands rec-1 uploading 90s",
        "MB up 1/2",
    ] {
        assert!(find(&screen, piece).is_some(), "{piece:?} missing:\n{text}");
    }

    let mut failed = running;
    failed.state = RecordingState::Failed;
    failed.error = Some("disk full: no space left on device".to_owned());
    update(
        &mut app,
        Event::Changes(vec![Delta::Recording(Change::Put {
            id: "standup".to_owned(),
            record: failed,
            revision: 4,
        })]),
    );
    assert!(
        app.log().any(|e| e.kind == LogKind::Error
            && e.text == "recording of standup failed: disk full: no space left on device"),
        "{:?}",
        app.log().collect::<Vec<_>>()
    );
    assert!(
        find(&screen, "up 0/2").is_none(),
        "no upload while recording:\n{text}"
    );
    let screen = render(&mut app, 160, 36);
    let text = lines(&screen).join("\n");
    assert!(find(&screen, "1 recording").is_none(), "{text}");
    let row = find(&screen, "standup rec-1 failed").expect("the failed recording");
    assert_eq!(screen[row].fg, Color::Red);
    let cause = find(&screen, "disk full").expect("the cause");
    assert_eq!(screen[cause].fg, Color::Red);
}

#[test]
fn resumed_watches_lift_the_banner_without_a_listing() {
    let mut app = three_nodes();
    update(&mut app, Event::Disconnected("connection reset".to_owned()));
    assert!(matches!(app.connection(), Connection::Down { .. }));
    update(&mut app, Event::Resumed(41));
    assert_eq!(app.connection(), &Connection::Up);
    let log: Vec<&str> = app.log().map(|e| e.text.as_str()).collect();
    assert!(
        log.contains(&"etcd is back; watching again from revision 41"),
        "{log:#?}"
    );
    // The data shown is untouched: nothing was listed.
    let screen = render(&mut app, 112, 20);
    assert_eq!(table_order(&screen), ["sfu-busy", "sfu-booked", "sfu-idle"]);
}
