//! The dashboard's state: the cluster as the etcd watches last described it, and what the
//! operator is doing (selection, sort, filter, dialogs). Everything here is plain data and
//! methods; nothing does I/O or knows about the terminal.
//!
//! The node list is kept sorted and filtered in `rows`, rebuilt at most once per batch of
//! events ([`App::refresh`]), so a fleet of hundreds of nodes reporting stats costs one sort per
//! frame, not one per record.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;

use rustc_hash::FxHashMap;
use std::time::SystemTime;

use crate::capacity::{Condition, LoadRules, NodeLoad, Sessions, believed_observed, condition};
use crate::model::{
    Change, DrainRequest, InstanceRecord, NodeRecord, NodeState, PendingDemand, RecordingRecord,
    RecordingState, SessionRecord,
};

/// The utilisation the load gauge marks: the meeting class's headroom, the shared class most
/// sessions are placed under (classes run from 0.75 to 0.90, docs/placement.md).
pub const HEADROOM_MARK: f64 =
    crate::capacity::ClassSpec::of(crate::model::SessionClass::Meeting).headroom;

/// How many event-log lines are kept.
const LOG_CAPACITY: usize = 200;

/// The node table's order; `s` cycles through them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Highest utilisation (effective load / capacity) first.
    #[default]
    Load,
    /// Highest CPU first.
    Cpu,
    /// Most sessions first.
    Sessions,
    /// By node id.
    Name,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            SortKey::Load => SortKey::Cpu,
            SortKey::Cpu => SortKey::Sessions,
            SortKey::Sessions => SortKey::Name,
            SortKey::Name => SortKey::Load,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Load => "load",
            SortKey::Cpu => "cpu",
            SortKey::Sessions => "sessions",
            SortKey::Name => "name",
        }
    }
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Typing a filter after `/`.
    Filter,
    /// Asking whether to drain this node.
    ConfirmDrain(String),
    Help,
}

/// The link to etcd as the feed last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Nothing listed yet.
    Connecting,
    Up,
    /// Unreachable since `since`; what is shown is from before then.
    Down {
        since: SystemTime,
        error: String,
    },
}

/// What an event-log line reports, which also decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    NodeJoined,
    NodeLeft,
    DrainStarted,
    DrainFinished,
    DrainLifted,
    SessionPlaced,
    SessionEnded,
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: SystemTime,
    pub kind: LogKind,
    pub text: String,
}

/// The result of the operator's last command, shown in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// Every collection the dashboard shows, read at one etcd revision.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub revision: i64,
    pub nodes: Vec<(String, NodeRecord)>,
    pub sessions: Vec<(String, SessionRecord)>,
    pub drains: Vec<(String, DrainRequest)>,
    pub pending: Vec<(String, PendingDemand)>,
    pub instances: Vec<(String, InstanceRecord)>,
    pub recordings: Vec<(String, RecordingRecord)>,
    /// Keys whose values did not parse.
    pub malformed: Vec<String>,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Node(Change<NodeRecord>),
    Session(Change<SessionRecord>),
    Drain(Change<DrainRequest>),
    Pending(Change<PendingDemand>),
    Instance(Change<InstanceRecord>),
    Recording(Change<RecordingRecord>),
}

/// What the operator asked for that needs etcd; the runner carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Drain(String),
    Undrain(String),
}

/// A node as one row of the table shows it.
#[derive(Debug, Clone, Copy)]
pub struct NodeRow<'a> {
    pub record: &'a NodeRecord,
    pub load: NodeLoad,
    /// A drain request exists, whether or not the agent shows `draining` yet.
    pub drain_requested: bool,
    /// Sessions committed to the node (reserved or live), from `sessions/`.
    pub sessions: usize,
    /// What placement makes of the node's own figures: warming up, host busy.
    pub condition: Condition,
}

impl NodeRow<'_> {
    pub fn draining(&self) -> bool {
        self.drain_requested || self.record.state == NodeState::Draining
    }
}

/// The dashboard's whole state.
#[derive(Debug)]
pub struct App {
    /// Where the data comes from, for the header: endpoints and prefix.
    pub source: String,
    /// The clock for stats ages and log stamps; set by ticks, so tests control it.
    pub now: SystemTime,
    /// How load and condition are read, as placement reads them.
    pub load_rules: LoadRules,
    // FxHash: every frame looks each node up in these maps, and SipHash was most of the
    // dashboard's CPU at 5,000 nodes.
    nodes: FxHashMap<String, NodeRecord>,
    /// Sessions by id, with each node's committed units summed as placement sums them.
    sessions: Sessions,
    /// Session ids per node, for the sessions panel.
    by_node: FxHashMap<String, BTreeSet<String>>,
    drains: FxHashMap<String, DrainRequest>,
    pending: BTreeMap<String, PendingDemand>,
    instances: BTreeMap<String, InstanceRecord>,
    recordings: BTreeMap<String, RecordingRecord>,
    log: VecDeque<LogEntry>,
    sort: SortKey,
    filter: String,
    mode: Mode,
    /// The selected node's id, so the selection follows a node when the order changes.
    selected: Option<String>,
    /// Its index in `rows`.
    selected_index: usize,
    /// Node ids that pass the filter, in sort order.
    rows: Vec<String>,
    rows_stale: bool,
    connection: Connection,
    status: Option<Status>,
    listed: bool,
    revision: i64,
    malformed: usize,
    /// How often `rows` was rebuilt; lets tests prove batching.
    rebuilds: u64,
    quit: bool,
}

impl App {
    pub fn new(source: impl Into<String>, now: SystemTime) -> Self {
        Self {
            source: source.into(),
            now,
            load_rules: LoadRules::default(),
            nodes: FxHashMap::default(),
            sessions: Sessions::new(),
            by_node: FxHashMap::default(),
            drains: FxHashMap::default(),
            pending: BTreeMap::new(),
            instances: BTreeMap::new(),
            recordings: BTreeMap::new(),
            log: VecDeque::new(),
            sort: SortKey::default(),
            filter: String::new(),
            mode: Mode::Normal,
            selected: None,
            selected_index: 0,
            rows: Vec::new(),
            rows_stale: false,
            connection: Connection::Connecting,
            status: None,
            listed: false,
            revision: 0,
            malformed: 0,
            rebuilds: 0,
            quit: false,
        }
    }

    // ---- reading, for the painter ----

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    pub fn log(&self) -> impl DoubleEndedIterator<Item = &LogEntry> + ExactSizeIterator {
        self.log.iter()
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether etcd has been listed at least once.
    pub fn listed(&self) -> bool {
        self.listed
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn malformed(&self) -> usize {
        self.malformed
    }

    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The ids of the rows shown, in order (after the filter).
    pub fn row_ids(&self) -> &[String] {
        &self.rows
    }

    /// The row at `index` of the visible order.
    pub fn row(&self, index: usize) -> Option<NodeRow<'_>> {
        self.rows.get(index).and_then(|id| self.node_row(id))
    }

    pub fn node_row(&self, id: &str) -> Option<NodeRow<'_>> {
        self.nodes.get(id).map(|record| self.row_of(record))
    }

    fn row_of<'a>(&'a self, record: &'a NodeRecord) -> NodeRow<'a> {
        let id = record.id.as_str();
        NodeRow {
            record,
            load: self.load_of(record),
            drain_requested: self.drains.contains_key(id),
            sessions: self.by_node.get(id).map_or(0, BTreeSet::len),
            condition: condition(record, self.now, &self.load_rules),
        }
    }

    /// The selected row's index, when there is a row.
    pub fn selected_index(&self) -> Option<usize> {
        (!self.rows.is_empty()).then_some(self.selected_index)
    }

    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    pub fn drain_request(&self, node: &str) -> Option<&DrainRequest> {
        self.drains.get(node)
    }

    /// The sessions committed to `node`, largest demand first.
    pub fn sessions_of(&self, node: &str) -> Vec<&SessionRecord> {
        let mut sessions: Vec<&SessionRecord> = self
            .by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|sid| self.sessions.get(sid))
            .collect();
        sessions.sort_by(|a, b| {
            b.demand_on(node)
                .cmp(&a.demand_on(node))
                .then_with(|| a.sid.cmp(&b.sid))
        });
        sessions
    }

    pub fn pending(&self) -> impl ExactSizeIterator<Item = &PendingDemand> {
        self.pending.values()
    }

    pub fn instances(&self) -> impl ExactSizeIterator<Item = &InstanceRecord> {
        self.instances.values()
    }

    /// Recordings, by session id: running ones and those whose record is still kept.
    pub fn recordings(&self) -> impl ExactSizeIterator<Item = &RecordingRecord> {
        self.recordings.values()
    }

    /// Recordings requested or running.
    pub fn active_recordings(&self) -> usize {
        self.recordings
            .values()
            .filter(|r| r.state.is_active())
            .count()
    }

    fn load_of(&self, record: &NodeRecord) -> NodeLoad {
        let committed = self.sessions.on_node(&record.id).committed();
        NodeLoad {
            observed: believed_observed(record, committed, self.now, &self.load_rules),
            committed,
            capacity: record.capacity,
        }
    }

    // ---- data from etcd ----

    /// Takes a fresh listing. The first one is taken as it is; a later one (after a lost
    /// watch) is compared with what was shown, so what happened meanwhile reaches the log.
    pub fn apply_listing(&mut self, listing: Listing) {
        let reconnected = matches!(self.connection, Connection::Down { .. });
        self.connection = Connection::Up;
        self.revision = listing.revision;
        self.malformed = listing.malformed.len();
        if !self.listed {
            self.listed = true;
            for (id, record) in listing.nodes {
                self.nodes.insert(id, record);
            }
            for (id, request) in listing.drains {
                self.drains.insert(id, request);
            }
            for (sid, session) in listing.sessions {
                self.insert_session(sid, session);
            }
            self.pending = listing.pending.into_iter().collect();
            self.instances = listing.instances.into_iter().collect();
            self.recordings = listing.recordings.into_iter().collect();
            self.push_log(
                LogKind::Info,
                format!(
                    "listed {} nodes, {} sessions",
                    self.nodes.len(),
                    self.sessions.len()
                ),
            );
        } else {
            let deltas = self.diff(listing);
            self.apply_deltas(deltas);
            // A listing while connected follows a compaction past what the watches had seen.
            let text = if reconnected {
                "etcd is back; listed again"
            } else {
                "listed again: etcd compacted past what the watches had seen"
            };
            self.push_log(LogKind::Info, text.into());
        }
        self.rows_stale = true;
    }

    /// The deltas that turn the current state into `listing`: puts for what is new or
    /// changed, deletes for what is gone. Nodes and drains come first, so that session ends
    /// judge "drain finished" on the new state.
    fn diff(&self, listing: Listing) -> Vec<Delta> {
        let r = listing.revision;
        let mut deltas = Vec::new();
        deltas.extend(changes(&self.nodes, listing.nodes, r).map(Delta::Node));
        deltas.extend(changes(&self.drains, listing.drains, r).map(Delta::Drain));
        deltas.extend(changes(&self.sessions, listing.sessions, r).map(Delta::Session));
        deltas.extend(changes(&self.pending, listing.pending, r).map(Delta::Pending));
        deltas.extend(changes(&self.instances, listing.instances, r).map(Delta::Instance));
        deltas.extend(changes(&self.recordings, listing.recordings, r).map(Delta::Recording));
        deltas
    }

    /// Applies watched changes and logs what an operator cares about.
    pub fn apply_deltas(&mut self, deltas: Vec<Delta>) {
        for delta in deltas {
            self.apply_delta(delta);
        }
        self.rows_stale = true;
    }

    fn apply_delta(&mut self, delta: Delta) {
        let revision = match &delta {
            Delta::Node(c) => revision_of(c),
            Delta::Session(c) => revision_of(c),
            Delta::Drain(c) => revision_of(c),
            Delta::Pending(c) => revision_of(c),
            Delta::Instance(c) => revision_of(c),
            Delta::Recording(c) => revision_of(c),
        };
        self.revision = self.revision.max(revision);
        match delta {
            Delta::Node(change) => self.node_change(change),
            Delta::Session(change) => self.session_change(change),
            Delta::Drain(change) => self.drain_change(change),
            Delta::Pending(change) => match change {
                Change::Put { id, record, .. } => {
                    self.pending.insert(id, record);
                }
                Change::Deleted { id, .. } | Change::Malformed { id, .. } => {
                    self.pending.remove(&id);
                }
            },
            Delta::Instance(change) => match change {
                Change::Put { id, record, .. } => {
                    self.instances.insert(id, record);
                }
                Change::Deleted { id, .. } | Change::Malformed { id, .. } => {
                    self.instances.remove(&id);
                }
            },
            Delta::Recording(change) => self.recording_change(change),
        }
    }

    /// Logs a recording's start and how it ended, with the cause when it failed.
    fn recording_change(&mut self, change: Change<RecordingRecord>) {
        match change {
            Change::Put { id, record, .. } => {
                let before = self.recordings.get(&id).map(|r| r.state);
                if before != Some(record.state) {
                    let (kind, text) = match record.state {
                        RecordingState::Requested => (
                            LogKind::Info,
                            format!("recording of {} requested", record.sid),
                        ),
                        RecordingState::Recording => (
                            LogKind::Info,
                            format!("recording {} on {}", record.sid, record.node),
                        ),
                        RecordingState::Uploading => (
                            LogKind::Info,
                            format!("recording of {} stopped; uploading", record.sid),
                        ),
                        RecordingState::Done => (
                            LogKind::Info,
                            format!(
                                "recording of {} done: {} files, {}",
                                record.sid,
                                record.files.len(),
                                crate::text::short_bytes(record.bytes())
                            ),
                        ),
                        RecordingState::Failed => (
                            LogKind::Error,
                            format!(
                                "recording of {} failed: {}",
                                record.sid,
                                record.error.as_deref().unwrap_or("no cause given")
                            ),
                        ),
                    };
                    self.push_log(kind, text);
                }
                self.recordings.insert(id, record);
            }
            Change::Deleted { id, .. } | Change::Malformed { id, .. } => {
                self.recordings.remove(&id);
            }
        }
    }

    fn node_change(&mut self, change: Change<NodeRecord>) {
        match change {
            Change::Put { id, record, .. } => {
                if !self.nodes.contains_key(&id) {
                    self.push_log(
                        LogKind::NodeJoined,
                        format!(
                            "node {id} joined ({}, {}u)",
                            record.machine_type, record.capacity
                        ),
                    );
                }
                self.nodes.insert(id, record);
            }
            Change::Deleted { id, .. } => {
                if self.nodes.remove(&id).is_some() {
                    self.push_log(LogKind::NodeLeft, format!("node {id} left"));
                }
            }
            Change::Malformed { id, .. } => {
                self.nodes.remove(&id);
                self.push_log(
                    LogKind::Error,
                    format!("node {id}: malformed record, not shown"),
                );
            }
        }
    }

    fn session_change(&mut self, change: Change<SessionRecord>) {
        match change {
            Change::Put { id, record, .. } => {
                let text = format!(
                    "session {id} placed on {} ({} {}, {}u)",
                    record.node, record.class, record.size, record.demand
                );
                if self.insert_session(id, record).is_none() {
                    self.push_log(LogKind::SessionPlaced, text);
                }
            }
            Change::Deleted { id, .. } | Change::Malformed { id, .. } => {
                if let Some(old) = self.remove_session(&id) {
                    self.push_log(
                        LogKind::SessionEnded,
                        format!("session {id} ended on {}", old.node),
                    );
                    self.check_drained(&old.node);
                }
            }
        }
    }

    fn drain_change(&mut self, change: Change<DrainRequest>) {
        match change {
            Change::Put { id, record, .. } => {
                let reason = record
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let started = self.drains.insert(id.clone(), record).is_none();
                if started {
                    self.push_log(
                        LogKind::DrainStarted,
                        format!("drain started on {id}{reason}"),
                    );
                    self.check_drained(&id);
                }
            }
            Change::Deleted { id, .. } | Change::Malformed { id, .. } => {
                if self.drains.remove(&id).is_some() {
                    self.push_log(LogKind::DrainLifted, format!("drain lifted on {id}"));
                }
            }
        }
    }

    /// Logs "drain finished" when a node with a drain request has no sessions left.
    fn check_drained(&mut self, node: &str) {
        let empty = self.by_node.get(node).is_none_or(BTreeSet::is_empty);
        if empty && self.drains.contains_key(node) {
            self.push_log(
                LogKind::DrainFinished,
                format!("drain finished on {node}: no sessions"),
            );
        }
    }

    /// Inserts or replaces a session and keeps the per-node lists in step. Returns the
    /// record it replaced.
    fn insert_session(&mut self, sid: String, mut session: SessionRecord) -> Option<SessionRecord> {
        // The key names the session: a record naming another is shown under its key, so
        // that its deletion finds it.
        session.sid = sid;
        let nodes: Vec<String> = session.nodes().map(str::to_owned).collect();
        let sid = session.sid.clone();
        let old = self.sessions.put(session);
        if let Some(old) = &old {
            self.unlist(old);
        }
        for node in nodes {
            self.by_node.entry(node).or_default().insert(sid.clone());
        }
        old
    }

    fn remove_session(&mut self, sid: &str) -> Option<SessionRecord> {
        let old = self.sessions.remove(sid)?;
        self.unlist(&old);
        Some(old)
    }

    /// Takes `session` off the lists of its nodes.
    fn unlist(&mut self, session: &SessionRecord) {
        for node in session.nodes() {
            if let Some(set) = self.by_node.get_mut(node) {
                set.remove(&session.sid);
                if set.is_empty() {
                    self.by_node.remove(node);
                }
            }
        }
    }

    /// The feed lost etcd; keep showing the last data under a banner.
    pub fn disconnected(&mut self, error: String) {
        match &mut self.connection {
            Connection::Down { error: e, .. } => *e = error,
            _ => {
                self.push_log(LogKind::Error, format!("etcd unreachable: {error}"));
                self.connection = Connection::Down {
                    since: self.now,
                    error,
                };
            }
        }
    }

    /// The feed's watches resumed after a break, from `revision`, with nothing missed.
    pub fn resumed(&mut self, revision: i64) {
        if matches!(self.connection, Connection::Down { .. }) {
            self.push_log(
                LogKind::Info,
                format!("etcd is back; watching again from revision {revision}"),
            );
        }
        self.connection = Connection::Up;
    }

    pub fn tick(&mut self, now: SystemTime) {
        self.now = now;
    }

    /// The outcome of an [`Action`].
    pub fn action_done(&mut self, action: &Action, result: Result<String, String>) {
        let (text, error) = match result {
            Ok(text) => (text, false),
            Err(error) => {
                let what = match action {
                    Action::Drain(node) => format!("drain {node} failed: {error}"),
                    Action::Undrain(node) => format!("undrain {node} failed: {error}"),
                };
                self.push_log(LogKind::Error, what.clone());
                (what, true)
            }
        };
        self.status = Some(Status { text, error });
    }

    fn push_log(&mut self, kind: LogKind, text: String) {
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogEntry {
            at: self.now,
            kind,
            text,
        });
    }

    // ---- the table's order ----

    /// Rebuilds the filtered, sorted rows if anything changed since the last call, and keeps
    /// the selection on the same node (or the same position, if that node is gone).
    pub fn refresh(&mut self) {
        if !self.rows_stale {
            return;
        }
        self.rows_stale = false;
        self.rebuilds += 1;
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<(NodeRow<'_>, f64)> = self
            .nodes
            .values()
            .map(|record| self.row_of(record))
            .filter(|row| filter.is_empty() || matches_filter(row, &filter))
            .map(|row| {
                let key = match self.sort {
                    SortKey::Load => row.load.utilisation(),
                    SortKey::Cpu => row.record.stats.agent_cpu,
                    SortKey::Sessions => row.sessions as f64,
                    SortKey::Name => 0.0,
                };
                (row, key)
            })
            .collect();
        // Descending by the key, ties (and the name sort) by id.
        rows.sort_by(|(a, ka), (b, kb)| {
            kb.total_cmp(ka).then_with(|| a.record.id.cmp(&b.record.id))
        });
        let rows: Vec<String> = rows.into_iter().map(|(r, _)| r.record.id.clone()).collect();
        self.rows = rows;
        let kept = self
            .selected
            .as_ref()
            .and_then(|id| self.rows.iter().position(|r| r == id));
        match kept {
            Some(index) => self.selected_index = index,
            None => self.select_index(self.selected_index),
        }
    }

    fn select_index(&mut self, index: usize) {
        if self.rows.is_empty() {
            self.selected_index = 0;
            // Keep the wish: the node may come back into the filter.
            return;
        }
        self.selected_index = index.min(self.rows.len() - 1);
        self.selected = Some(self.rows[self.selected_index].clone());
    }

    // ---- the operator ----

    pub fn select_by(&mut self, delta: isize) {
        self.refresh();
        let index = self.selected_index.saturating_add_signed(delta);
        self.select_index(index);
    }

    pub fn select_first(&mut self) {
        self.refresh();
        self.select_index(0);
    }

    pub fn select_last(&mut self) {
        self.refresh();
        self.select_index(usize::MAX);
    }

    pub fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
        self.rows_stale = true;
    }

    pub fn set_sort(&mut self, sort: SortKey) {
        self.sort = sort;
        self.rows_stale = true;
    }

    pub fn start_filter(&mut self) {
        self.mode = Mode::Filter;
    }

    pub fn push_filter(&mut self, c: char) {
        self.filter.push(c);
        self.rows_stale = true;
    }

    pub fn pop_filter(&mut self) {
        self.filter.pop();
        self.rows_stale = true;
    }

    /// Enter: keep the filter and go back to the table.
    pub fn accept_filter(&mut self) {
        self.mode = Mode::Normal;
    }

    /// Esc while typing: drop the filter.
    pub fn clear_filter(&mut self) {
        self.filter.clear();
        self.mode = Mode::Normal;
        self.rows_stale = true;
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_owned();
        self.rows_stale = true;
    }

    /// `d`: ask before draining the selected node.
    pub fn ask_drain(&mut self) {
        self.refresh();
        if let Some(id) = self.selected_row_id() {
            self.mode = Mode::ConfirmDrain(id);
        }
    }

    /// `y` in the dialog.
    pub fn confirm_drain(&mut self) -> Option<Action> {
        let Mode::ConfirmDrain(node) = std::mem::take(&mut self.mode) else {
            return None;
        };
        self.status = Some(Status {
            text: format!("requesting drain of {node}…"),
            error: false,
        });
        Some(Action::Drain(node))
    }

    pub fn cancel_dialog(&mut self) {
        self.mode = Mode::Normal;
    }

    /// `u`: undrain the selected node; harmless, so no question.
    pub fn undrain_selected(&mut self) -> Option<Action> {
        self.refresh();
        let node = self.selected_row_id()?;
        self.status = Some(Status {
            text: format!("requesting undrain of {node}…"),
            error: false,
        });
        Some(Action::Undrain(node))
    }

    fn selected_row_id(&self) -> Option<String> {
        self.rows.get(self.selected_index).cloned()
    }

    pub fn toggle_help(&mut self) {
        self.mode = if self.mode == Mode::Help {
            Mode::Normal
        } else {
            Mode::Help
        };
    }

    pub fn quit(&mut self) {
        self.quit = true;
    }
}

fn revision_of<T>(change: &Change<T>) -> i64 {
    match change {
        Change::Put { revision, .. }
        | Change::Deleted { revision, .. }
        | Change::Malformed { revision, .. } => *revision,
    }
}

/// A collection the dashboard holds, keyed by id.
trait Collection<T> {
    fn ids(&self) -> Vec<String>;
    fn record(&self, id: &str) -> Option<&T>;
}

impl<T, S: BuildHasher> Collection<T> for HashMap<String, T, S> {
    fn ids(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
    fn record(&self, id: &str) -> Option<&T> {
        self.get(id)
    }
}

impl Collection<SessionRecord> for Sessions {
    fn ids(&self) -> Vec<String> {
        self.iter().map(|s| s.sid.clone()).collect()
    }
    fn record(&self, id: &str) -> Option<&SessionRecord> {
        self.get(id)
    }
}

impl<T> Collection<T> for BTreeMap<String, T> {
    fn ids(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
    fn record(&self, id: &str) -> Option<&T> {
        self.get(id)
    }
}

/// What changed from `old` to `new`, as watch changes at `revision`.
fn changes<T: PartialEq>(
    old: &impl Collection<T>,
    new: Vec<(String, T)>,
    revision: i64,
) -> impl Iterator<Item = Change<T>> {
    let listed: BTreeSet<&str> = new.iter().map(|(id, _)| id.as_str()).collect();
    let gone: Vec<Change<T>> = old
        .ids()
        .into_iter()
        .filter(|id| !listed.contains(id.as_str()))
        .map(|id| Change::Deleted { id, revision })
        .collect();
    let put: Vec<Change<T>> = new
        .into_iter()
        .filter(|(id, record)| old.record(id) != Some(record))
        .map(|(id, record)| Change::Put {
            id,
            record,
            revision,
        })
        .collect();
    gone.into_iter().chain(put)
}

/// Case-insensitive substring match on id, machine type, zone and state.
fn matches_filter(row: &NodeRow<'_>, filter: &str) -> bool {
    let state = if row.draining() { "draining" } else { "ready" };
    [
        row.record.id.as_str(),
        row.record.machine_type.as_str(),
        row.record.zone.as_str(),
        state,
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(filter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, SessionClass, SessionState};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + secs)
    }

    fn session(sid: &str, node: &str, relays: &[&str], demand: u32) -> SessionRecord {
        SessionRecord {
            sid: sid.to_owned(),
            class: SessionClass::Conference,
            size: 100,
            demand,
            node: node.to_owned(),
            state: SessionState::Live,
            relays: relays.iter().map(|r| (*r).to_owned()).collect(),
            edge_demand: demand / 2,
            created_at: at(0),
        }
    }

    fn committed(app: &App, node: &str) -> u32 {
        app.node_row(node).map_or(0, |row| row.load.committed)
    }

    #[test]
    fn committed_units_follow_puts_moves_and_deletes_as_placement_counts_them() {
        let mut app = App::new("test", at(100));
        let nodes = ["a", "b", "c"].map(|id| {
            (
                id.to_owned(),
                NodeRecord::blank(id, "n2-highcpu-4", 4, 600, at(90)),
            )
        });
        app.apply_listing(Listing {
            revision: 1,
            nodes: nodes.to_vec(),
            sessions: vec![("s1".to_owned(), session("s1", "a", &["b"], 100))],
            drains: Vec::new(),
            pending: Vec::new(),
            instances: Vec::new(),
            recordings: Vec::new(),
            malformed: Vec::new(),
        });
        assert_eq!((committed(&app, "a"), committed(&app, "b")), (100, 50));
        let put = |id: &str, record: SessionRecord| {
            Delta::Session(Change::Put {
                id: id.to_owned(),
                record,
                revision: 2,
            })
        };
        // The session moves its edge from b to c, and a second one lists c twice: c counts
        // it once, as placement's index does.
        app.apply_deltas(vec![
            put("s1", session("s1", "a", &["c"], 100)),
            put("s2", session("s2", "c", &["c"], 40)),
        ]);
        assert_eq!(
            (
                committed(&app, "a"),
                committed(&app, "b"),
                committed(&app, "c")
            ),
            (100, 0, 50 + 40)
        );
        assert_eq!(app.sessions_of("c").len(), 2);
        assert!(app.sessions_of("b").is_empty());
        app.apply_deltas(vec![Delta::Session(Change::Deleted {
            id: "s1".to_owned(),
            revision: 3,
        })]);
        assert_eq!((committed(&app, "a"), committed(&app, "c")), (0, 40));
        assert_eq!(app.session_count(), 1);
    }
}
