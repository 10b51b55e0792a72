//! The edge's end of a relay: [`Edges`] keeps one relay per session that has participants on
//! this node and lives on another, dials the origin when the first participant arrives,
//! redials with backoff while any remain, and closes the relay when the last one leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ion_cluster::backoff::Backoff;
use ion_cluster::loadtest::signal::Signal;
use ion_cluster::protocol::{DescParams, JoinConfig, SessionDescription};
use ion_cluster::token::{self, JoinSecret};
use str0m::change::SdpOffer;
use tokio::sync::{mpsc, oneshot};

use crate::sfu::{Command, Link, ParticipantId, PeerEvent, Sfu, SfuError};

/// How long the edge waits for the origin's WebSocket to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The relays this node runs as an edge.
#[derive(Clone)]
pub struct Edges {
    sfu: Sfu,
    node_id: String,
    secret: Option<JoinSecret>,
    relays: Arc<Mutex<HashMap<String, EdgeRelay>>>,
}

struct EdgeRelay {
    members: usize,
    /// Dropped to close the relay.
    _stop: oneshot::Sender<()>,
}

/// Where a relay comes from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub node: String,
    /// The origin's signaling URL, `ws://host:port/ws`.
    pub signal_url: String,
}

impl Edges {
    pub fn new(sfu: Sfu, node_id: String, secret: Option<JoinSecret>) -> Self {
        Self {
            sfu,
            node_id,
            secret,
            relays: Arc::default(),
        }
    }

    fn relays(&self) -> std::sync::MutexGuard<'_, HashMap<String, EdgeRelay>> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a participant of `sid` in; the first one opens the relay from `origin`.
    pub fn enter(&self, sid: &str, origin: Origin) -> Result<(), String> {
        let secret = super::no_secret(self.secret.as_ref())?.clone();
        let mut relays = self.relays();
        if let Some(relay) = relays.get_mut(sid) {
            relay.members += 1;
            return Ok(());
        }
        let (stop, stopped) = oneshot::channel();
        let dialer = Dialer {
            sfu: self.sfu.clone(),
            node_id: self.node_id.clone(),
            secret,
            sid: sid.to_owned(),
            origin,
        };
        tokio::spawn(dialer.run(stopped));
        relays.insert(
            sid.to_owned(),
            EdgeRelay {
                members: 1,
                _stop: stop,
            },
        );
        Ok(())
    }

    /// Counts a participant of `sid` out; the last one closes the relay.
    pub fn leave(&self, sid: &str) {
        let mut relays = self.relays();
        if let Some(relay) = relays.get_mut(sid) {
            relay.members -= 1;
            if relay.members == 0 {
                relays.remove(sid);
            }
        }
    }
}

struct Dialer {
    sfu: Sfu,
    node_id: String,
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
                Ended::Failed(why) => {
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
        let url = match super::relay_url(&self.origin.signal_url, &self.sid, &self.node_id, &token)
        {
            Ok(url) => url,
            Err(why) => return Ended::Failed(why),
        };
        let (signal, mut incoming, tasks) = match Signal::connect(&url, CONNECT_TIMEOUT).await {
            Ok(connected) => connected,
            Err(error) => return Ended::Failed(error.to_string()),
        };
        let worker = self.sfu.worker_for(&self.sid);
        let participant = self.sfu.new_participant_id();
        let (events, mut events_rx) = mpsc::unbounded_channel();
        let mut joined = false;
        tracing::info!(sid = %self.sid, origin = %self.origin.node, "relay from the origin connected");
        let ended = loop {
            tokio::select! {
                _ = &mut *stopped => break Ended::Stopped,
                offer = incoming.offers.recv() => {
                    let Some(sdp) = offer else {
                        let why = signal.closed_reason().unwrap_or_else(|| "the origin closed the relay".to_owned());
                        break Ended::Failed(why);
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
                        break Ended::Failed(why);
                    }
                }
                event = events_rx.recv() => match event {
                    Some(PeerEvent::Removed(reason)) => break Ended::Failed(reason),
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
    Failed(String),
}
