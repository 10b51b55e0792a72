//! `ionctl top`: a live dashboard of the cluster, in the shape of bottom's:
//! - [`app`]: the state ([`App`]) and its methods; no I/O;
//! - [`event`]: the one [`Event`] type and [`update`], which maps events to `App` methods;
//! - [`draw`]: the painter, from `App` to a frame, and [`widgets`] it shares;
//! - `feed`: etcd lists and watches, turned into events;
//! - `terminal`: raw mode and its restoration on every exit path, panics included.
//!
//! [`run`] wires them: keys (from a reader thread), ticks, etcd data, signals and the results
//! of drain/undrain all arrive on one channel. The loop applies every event waiting, then
//! draws once, so a burst of updates from hundreds of nodes costs one frame.

pub mod app;
pub mod draw;
pub mod event;
mod feed;
mod terminal;
pub mod widgets;

pub use app::{Action, App, Delta, Listing, SortKey};
pub use draw::{View, draw};
pub use event::{Event, update};

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::model::DrainRequest;
use crate::store::{EtcdOptions, Store, Undrained};

/// How often the clock moves (stats ages) when nothing else happens.
const TICK: Duration = Duration::from_secs(1);
/// Data changes are drawn at most this often; keys are drawn at once. Four frames a second
/// keeps the screen live (top redraws every 3 s, k9s every 2 s) while a fleet of thousands of
/// nodes rewrites its records: each frame sorts every node (docs/benchmarks.md).
const FRAME: Duration = Duration::from_millis(250);

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub etcd: EtcdOptions,
    /// The drain reason `d` writes.
    pub drain_reason: String,
    /// A key that panics, so tests can prove the terminal is restored after a panic.
    pub panic_key: Option<char>,
    /// How load and node condition are read: the placement policy's rules.
    pub load_rules: crate::capacity::LoadRules,
}

/// Runs the dashboard until the operator quits. The terminal is restored before this returns,
/// whatever happened.
pub async fn run(options: Options) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let (store_tx, store_rx) = watch::channel::<Option<Store>>(None);
    let source = format!(
        "{} {}",
        options.etcd.endpoints.join(","),
        options.etcd.prefix
    );

    let mut guard = terminal::TerminalGuard::enter()?;
    let stop = Arc::new(AtomicBool::new(false));
    spawn_input_reader(tx.clone(), stop.clone())?;
    let feed = tokio::spawn(feed::run(options.etcd.clone(), tx.clone(), store_tx));
    let ticker = tokio::spawn(tick(tx.clone()));
    let signals = tokio::spawn(signals(tx.clone()));

    let mut app = App::new(source, SystemTime::now());
    app.load_rules = options.load_rules;
    let mut view = View::default();
    let result = async {
        guard.terminal.draw(|f| draw(f, &app, &mut view))?;
        let mut last_draw = Instant::now();
        let mut pending_draw = false;
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                () = tokio::time::sleep_until(last_draw + FRAME), if pending_draw => None,
            };
            let mut urgent = false;
            if let Some(event) = event {
                urgent |= handle(&mut app, event, &options, &store_rx, &tx);
                // Everything already waiting joins this frame.
                while let Ok(event) = rx.try_recv() {
                    urgent |= handle(&mut app, event, &options, &store_rx, &tx);
                }
                pending_draw = true;
            }
            if app.should_quit() {
                return Ok(());
            }
            if pending_draw && (urgent || last_draw.elapsed() >= FRAME) {
                app.refresh();
                guard.terminal.draw(|f| draw(f, &app, &mut view))?;
                last_draw = Instant::now();
                pending_draw = false;
            }
        }
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    feed.abort();
    ticker.abort();
    signals.abort();
    drop(guard);
    result
}

/// Applies one event; returns true when it should be drawn without waiting for the frame
/// budget (the operator's keys).
fn handle(
    app: &mut App,
    event: Event,
    options: &Options,
    store: &watch::Receiver<Option<Store>>,
    tx: &mpsc::Sender<Event>,
) -> bool {
    let urgent = matches!(event, Event::Key(_) | Event::Resize | Event::Done { .. });
    if let (Event::Key(key), Some(panic_key)) = (&event, options.panic_key)
        && key.code == crossterm::event::KeyCode::Char(panic_key)
    {
        panic!("ionctl top: panic key {panic_key:?} pressed (IONCTL_TOP_PANIC_KEY)");
    }
    if let Some(action) = update(app, event) {
        let store = store.borrow().clone();
        tokio::spawn(execute(
            action,
            store,
            options.drain_reason.clone(),
            tx.clone(),
        ));
    }
    urgent
}

/// Carries out a drain or undrain and reports back on the event channel.
async fn execute(action: Action, store: Option<Store>, reason: String, tx: mpsc::Sender<Event>) {
    let result = match (&action, store) {
        (_, None) => Err("not connected to etcd yet".to_owned()),
        (Action::Drain(node), Some(store)) => {
            let request = DrainRequest {
                requested_at: SystemTime::now(),
                deadline: None,
                reason: Some(reason),
            };
            store
                .drain(node, &request)
                .await
                .map(|drained| match drained.previous {
                    Some(_) => format!("{node} was draining; request renewed"),
                    None => format!("drain requested for {node}"),
                })
                .map_err(|e| e.to_string())
        }
        (Action::Undrain(node), Some(store)) => store
            .undrain(node)
            .await
            .map(|undrained| match undrained {
                Undrained::Lifted => format!("{node} undrained"),
                Undrained::WasNotDraining => format!("{node} was not draining"),
            })
            .map_err(|e| e.to_string()),
    };
    let _ = tx.send(Event::Done { action, result }).await;
}

async fn tick(tx: mpsc::Sender<Event>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if tx.send(Event::Tick(SystemTime::now())).await.is_err() {
            return;
        }
    }
}

/// SIGTERM and SIGHUP (the terminal closed) end the dashboard like `q`, so the terminal is
/// restored. Ctrl-C arrives as a key in raw mode.
async fn signals(tx: mpsc::Sender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    let _ = tx.send(Event::Quit).await;
}

/// Reads the terminal on a thread of its own: crossterm's reader blocks. It polls with a short
/// timeout so it notices `stop`.
fn spawn_input_reader(tx: mpsc::Sender<Event>, stop: Arc<AtomicBool>) -> io::Result<()> {
    use crossterm::event as ct;
    std::thread::Builder::new()
        .name("ionctl-top-input".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let event = match ct::poll(Duration::from_millis(200)) {
                    Ok(false) => continue,
                    Ok(true) => ct::read(),
                    Err(error) => Err(error),
                };
                let event = match event {
                    Ok(ct::Event::Key(key)) => Event::Key(key),
                    Ok(ct::Event::Resize(..)) => Event::Resize,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the terminal");
                        Event::Quit
                    }
                };
                let quit = matches!(event, Event::Quit);
                if tx.blocking_send(event).is_err() || quit {
                    return;
                }
            }
        })
        .map(drop)
}
