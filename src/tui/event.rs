//! The one event type the dashboard's loop receives — keys, resizes, ticks, etcd data and the
//! outcome of the operator's commands — and [`update`], which maps each to [`App`] methods.

use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, App, Delta, Listing, Mode};

/// Everything that can change what the dashboard shows.
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    /// The terminal changed size; the next draw adapts.
    Resize,
    /// The clock moved: stats ages change.
    Tick(SystemTime),
    /// A full listing at one revision (at start, and after a lost watch).
    Listing(Box<Listing>),
    /// Changes from the watches.
    Changes(Vec<Delta>),
    /// etcd cannot be reached; the feed keeps retrying.
    Disconnected(String),
    /// The watches broke and were opened again from where they were, at this revision: no
    /// listing was needed.
    Resumed(i64),
    /// A drain or undrain finished: a line for the operator, or the error.
    Done {
        action: Action,
        result: Result<String, String>,
    },
    /// SIGTERM, SIGHUP or the input reader ended: leave and restore the terminal.
    Quit,
}

/// Applies `event` to `app`; returns the command to carry out, if the operator asked for one.
/// Call [`App::refresh`] once after a batch of events, before drawing.
pub fn update(app: &mut App, event: Event) -> Option<Action> {
    match event {
        Event::Key(key) => return on_key(app, key),
        Event::Resize => {}
        Event::Tick(now) => app.tick(now),
        Event::Listing(listing) => app.apply_listing(*listing),
        Event::Changes(deltas) => app.apply_deltas(deltas),
        Event::Disconnected(error) => app.disconnected(error),
        Event::Resumed(revision) => app.resumed(revision),
        Event::Done { action, result } => app.action_done(&action, result),
        Event::Quit => app.quit(),
    }
    None
}

/// The key map; `?` in the dashboard shows it.
pub const KEYS_HELP: &[(&str, &str)] = &[
    ("↑/↓, j/k", "select a node"),
    ("PgUp/PgDn, g/G", "page, first, last"),
    ("d", "drain the selected node (asks first)"),
    ("u", "undrain the selected node"),
    ("s", "sort by load, CPU, sessions, name"),
    ("/", "filter by id, type, zone or state"),
    ("?", "this help"),
    ("q, Esc", "quit"),
];

const PAGE: isize = 10;

fn on_key(app: &mut App, key: KeyEvent) -> Option<Action> {
    // Key releases and repeats arrive as events of their own on some terminals.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        app.quit();
        return None;
    }
    match app.mode().clone() {
        Mode::Normal => match key.code {
            KeyCode::Char('q') | KeyCode::Esc => app.quit(),
            KeyCode::Down | KeyCode::Char('j') => app.select_by(1),
            KeyCode::Up | KeyCode::Char('k') => app.select_by(-1),
            KeyCode::PageDown => app.select_by(PAGE),
            KeyCode::PageUp => app.select_by(-PAGE),
            KeyCode::Home | KeyCode::Char('g') => app.select_first(),
            KeyCode::End | KeyCode::Char('G') => app.select_last(),
            KeyCode::Char('s') => app.cycle_sort(),
            KeyCode::Char('/') => app.start_filter(),
            KeyCode::Char('?') => app.toggle_help(),
            KeyCode::Char('d') => app.ask_drain(),
            KeyCode::Char('u') => return app.undrain_selected(),
            _ => {}
        },
        Mode::Filter => match key.code {
            KeyCode::Enter => app.accept_filter(),
            KeyCode::Esc => app.clear_filter(),
            KeyCode::Backspace => app.pop_filter(),
            KeyCode::Down => app.select_by(1),
            KeyCode::Up => app.select_by(-1),
            KeyCode::Char(c) => app.push_filter(c),
            _ => {}
        },
        Mode::ConfirmDrain(_) => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                return app.confirm_drain();
            }
            _ => app.cancel_dialog(),
        },
        Mode::Help => app.toggle_help(),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn escape_closes_a_dialog_before_it_quits() {
        let mut app = App::new("test", SystemTime::UNIX_EPOCH);
        update(&mut app, key(KeyCode::Char('?')));
        assert_eq!(app.mode(), &Mode::Help);
        update(&mut app, key(KeyCode::Esc));
        assert_eq!(app.mode(), &Mode::Normal);
        assert!(!app.should_quit());
        update(&mut app, key(KeyCode::Char('/')));
        update(&mut app, key(KeyCode::Char('x')));
        update(&mut app, key(KeyCode::Esc));
        assert_eq!((app.mode(), app.filter()), (&Mode::Normal, ""));
        assert!(!app.should_quit());
        update(&mut app, key(KeyCode::Esc));
        assert!(app.should_quit());
    }

    #[test]
    fn q_typed_into_the_filter_is_text() {
        let mut app = App::new("test", SystemTime::UNIX_EPOCH);
        for c in "/sq".chars() {
            update(&mut app, key(KeyCode::Char(c)));
        }
        assert_eq!(app.filter(), "sq");
        assert!(!app.should_quit());
        update(&mut app, key(KeyCode::Enter));
        assert_eq!((app.mode(), app.filter()), (&Mode::Normal, "sq"));
    }

    #[test]
    fn ctrl_c_quits_from_anywhere() {
        let mut app = App::new("test", SystemTime::UNIX_EPOCH);
        update(&mut app, key(KeyCode::Char('/')));
        update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        );
        assert!(app.should_quit());
    }
}
