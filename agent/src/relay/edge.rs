//! The receiving end of relays: [`Edges`] pulls the tracks of every session that has
//! participants here and spans nodes from the other nodes that publish into it.
//!
//! - A session task per such session reads `sessions/<sid>` now and every
//!   [`REFRESH`], so nodes added to a live session are dialed too.
//! - It keeps one [`Dialer`] per node to pull from: the origin for a livestream (its one
//!   publisher is there), every other node of the session otherwise.
//! - A dialer redials with backoff while the session has participants here.
//! - The last participant's leave closes them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ion_cluster::backoff::Backoff;
use ion_cluster::loadtest::signal::Signal;
use ion_cluster::model::{NodeRecord, SessionClass, SessionRecord};
use ion_cluster::protocol::{DescParams, JoinConfig, SessionDescription};
use ion_cluster::store::{EtcdOptions, Store};
use ion_cluster::token::{self, JoinSecret};
use str0m::change::SdpOffer;
use tokio::sync::{mpsc, oneshot};

use crate::sfu::{Command, Link, ParticipantId, PeerEvent, Sfu, SfuError};

/// How long the edge waits for the origin's WebSocket to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a spanning session's record is read again for nodes added or gone.
const REFRESH: Duration = Duration::from_secs(3);

/// The relays this node pulls.
#[derive(Clone)]
pub struct Edges {
    shared: Arc<Shared>,
    sessions: Arc<Mutex<HashMap<String, SessionPull>>>,
}

/// What every session task and dialer needs.
struct Shared {
    sfu: Sfu,
    node_id: String,
    secret: Option<JoinSecret>,
    etcd: EtcdOptions,
}

struct SessionPull {
    members: usize,
    /// Dropped to close the session's relays.
    _stop: oneshot::Sender<()>,
}

/// Where a relay comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub node: String,
    /// The origin's signaling URL, `ws://host:port/ws`.
    pub signal_url: String,
}

impl Edges {
    pub fn new(sfu: Sfu, node_id: String, secret: Option<JoinSecret>, etcd: EtcdOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                sfu,
                node_id,
                secret,
                etcd,
            }),
            sessions: Arc::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionPull>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node can open relays: it has the cluster secret that signs them.
    pub fn can_relay(&self) -> bool {
        self.shared.secret.is_some()
    }

    /// Counts a participant of the spanning session `sid` in; the first one starts pulling
    /// its tracks from the other nodes.
    pub fn enter(&self, sid: &str) -> Result<(), String> {
        let secret = super::no_secret(self.shared.secret.as_ref())?.clone();
        let mut sessions = self.sessions();
        if let Some(session) = sessions.get_mut(sid) {
            session.members += 1;
            return Ok(());
        }
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(pull_session(
            self.shared.clone(),
            secret,
            sid.to_owned(),
            stopped,
        ));
        sessions.insert(
            sid.to_owned(),
            SessionPull {
                members: 1,
                _stop: stop,
            },
        );
        Ok(())
    }

    /// Counts a participant of `sid` out; the last one closes the session's relays.
    pub fn leave(&self, sid: &str) {
        let mut sessions = self.sessions();
        if let Some(session) = sessions.get_mut(sid) {
            session.members -= 1;
            if session.members == 0 {
                sessions.remove(sid);
            }
        }
    }
}

/// The nodes this node pulls session `record` from: the origin for a livestream, every
/// other node of the session otherwise.
pub fn sources(record: &SessionRecord, this_node: &str) -> Vec<String> {
    let mut nodes = vec![record.node.clone()];
    if record.class != SessionClass::Livestream {
        nodes.extend(record.relays.iter().cloned());
    }
    nodes.retain(|n| n != this_node);
    nodes.dedup();
    nodes
}

/// Keeps a dialer to each source of `sid` until `stopped`.
async fn pull_session(
    shared: Arc<Shared>,
    secret: JoinSecret,
    sid: String,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut dialers: HashMap<Origin, oneshot::Sender<()>> = HashMap::new();
    let mut store: Option<Store> = None;
    let mut origin_seen = None;
    loop {
        match wanted_origins(&shared, &mut store, &sid).await {
            Ok(None) => {
                // The record lives on the origin's lease: gone, the session is over.
                if let Some(origin) = origin_seen.take() {
                    let reason =
                        format!("session {sid} is over: its origin node {origin} ended it or died");
                    tracing::info!(%sid, %origin, "the session's origin ended it; closing it here");
                    dialers.clear();
                    let command = Command::EndSession {
                        sid: sid.as_str().into(),
                        reason,
                    };
                    let _ = shared.sfu.worker_for(&sid).send(command).await;
                }
            }
            Ok(Some((origin, origins))) => {
                origin_seen = Some(origin);
                dialers.retain(|origin, _| origins.contains(origin));
                for origin in origins {
                    if dialers.contains_key(&origin) {
                        continue;
                    }
                    let (stop, dialer_stopped) = oneshot::channel();
                    let dialer = Dialer {
                        shared: shared.clone(),
                        secret: secret.clone(),
                        sid: sid.clone(),
                        origin: origin.clone(),
                    };
                    tokio::spawn(dialer.run(dialer_stopped));
                    dialers.insert(origin, stop);
                }
            }
            Err(error) => {
                store = None;
                tracing::warn!(%sid, %error, "cannot read the nodes of a spanning session; keeping its relays");
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// The session's origin node and the registered nodes this node should pull `sid` from
/// now; None when the session has no record.
async fn wanted_origins(
    shared: &Shared,
    store: &mut Option<Store>,
    sid: &str,
) -> Result<Option<(String, Vec<Origin>)>, ion_cluster::store::StoreError> {
    if store.is_none() {
        *store = Some(Store::connect(&shared.etcd).await?);
    }
    let store = store.as_ref().expect("connected above");
    let Some(record) = store
        .get::<SessionRecord>(&store.keys().session(sid))
        .await?
    else {
        return Ok(None);
    };
    let mut origins = Vec::new();
    for node in sources(&record, &shared.node_id) {
        // A node that is not registered (dead, or not up yet) has nothing to pull.
        if let Some(record) = store.get::<NodeRecord>(&store.keys().node(&node)).await? {
            origins.push(Origin {
                node,
                signal_url: record.signal_url,
            });
        }
    }
    Ok(Some((record.node, origins)))
}

struct Dialer {
    shared: Arc<Shared>,
    secret: JoinSecret,
    sid: String,
    origin: Origin,
}

impl Dialer {
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.relay_once(&mut stopped).await {
                Ended::Stopped => return,
                Ended::Failed { why, connected } => {
                    // A relay that came up starts its retries afresh.
                    if connected {
                        backoff.reset();
                    }
                    tracing::warn!(sid = %self.sid, origin = %self.origin.node, %why, "relay from the origin ended; dialing again");
                }
            }
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// One relay connection, until it fails or the edge no longer needs it.
    async fn relay_once(&self, stopped: &mut oneshot::Receiver<()>) -> Ended {
        let token = token::issue_relay(
            &self.secret,
            &self.sid,
            &self.origin.node,
            SystemTime::now(),
            super::TOKEN_TTL,
        );
        let url = match super::relay_url(
            &self.origin.signal_url,
            &self.sid,
            &self.shared.node_id,
            &token,
        ) {
            Ok(url) => url,
            Err(why) => return Ended::failed(why, false),
        };
        let (signal, mut incoming, tasks) = match Signal::connect(&url, CONNECT_TIMEOUT).await {
            Ok(connected) => connected,
            Err(error) => return Ended::failed(error.to_string(), false),
        };
        let worker = self.shared.sfu.worker_for(&self.sid);
        let participant = self.shared.sfu.new_participant_id();
        let (events, mut events_rx) = mpsc::unbounded_channel();
        let mut joined = false;
        tracing::info!(sid = %self.sid, origin = %self.origin.node, "relay from the origin connected");
        let ended = loop {
            tokio::select! {
                _ = &mut *stopped => break Ended::Stopped,
                offer = incoming.offers.recv() => {
                    let Some(sdp) = offer else {
                        let why = signal.closed_reason().unwrap_or_else(|| "the origin closed the relay".to_owned());
                        break Ended::failed(why, true);
                    };
                    let answered = self
                        .answer(&worker, participant, &events, &mut joined, &sdp)
                        .await
                        .and_then(|answer| {
                            signal
                                .notify("answer", DescParams { desc: SessionDescription::answer(answer) })
                                .map_err(|e| e.to_string())
                        });
                    if let Err(why) = answered {
                        break Ended::failed(why, true);
                    }
                }
                event = events_rx.recv() => match event {
                    Some(PeerEvent::Removed(reason)) => break Ended::failed(reason, true),
                    Some(PeerEvent::LayerWanted(preference)) => {
                        if let Err(error) = signal.notify("layers", preference) {
                            break Ended::failed(error.to_string(), true);
                        }
                    }
                    Some(PeerEvent::SubscriberOffer(_)) | None => {}
                },
            }
        };
        for task in tasks {
            task.abort();
        }
        if joined {
            let _ = worker.send(Command::Leave { participant }).await;
        }
        ended
    }

    /// The edge's answer to an offer of the origin: the first one joins the relay to the
    /// session here as a publisher, later ones renegotiate it.
    async fn answer(
        &self,
        worker: &mpsc::Sender<Command>,
        participant: ParticipantId,
        events: &mpsc::UnboundedSender<PeerEvent>,
        joined: &mut bool,
        sdp: &str,
    ) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| format!("the origin's offer is not valid SDP: {e}"))?;
        let (reply, answer) = oneshot::channel();
        let command = if *joined {
            Command::Offer {
                participant,
                offer,
                reply,
            }
        } else {
            Command::Join {
                participant,
                sid: self.sid.as_str().into(),
                uid: format!("relay:{}", self.origin.node),
                offer,
                config: JoinConfig {
                    no_subscribe: true,
                    ..JoinConfig::default()
                },
                link: Link::FromOrigin {
                    origin: self.origin.node.clone(),
                },
                events: events.clone(),
                reply,
            }
        };
        worker
            .send(command)
            .await
            .map_err(|_| SfuError::WorkerGone.to_string())?;
        let answer = answer
            .await
            .unwrap_or(Err(SfuError::WorkerGone))
            .map_err(|e| format!("answering the origin's offer: {e}"))?;
        *joined = true;
        Ok(answer.to_sdp_string())
    }
}

enum Ended {
    Stopped,
    /// Why, and whether the relay had connected first.
    Failed {
        why: String,
        connected: bool,
    },
}

impl Ended {
    fn failed(why: String, connected: bool) -> Self {
        Ended::Failed { why, connected }
    }
}
