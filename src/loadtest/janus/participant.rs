//! A load-test participant in a Janus videoroom, the way janus.js uses one: its own Janus
//! session; one handle that creates the room if needed and, to publish, joins as a
//! publisher and sends an offer with its tracks; and one subscriber handle that joins with a
//! stream of every other publisher's feed and answers Janus's offer. The PeerConnections,
//! the media generators and the receive-side accounting are the ion-sfu participant's
//! (`client.rs`), so that only the SFU differs between the two targets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use super::api::{self, Handle, Session};
use crate::loadtest::client::{self, RemoteTrack, Role, Shared, lock, new_pc};
use crate::loadtest::media::VideoShape;
use crate::loadtest::peer::{ClientError, JoinSpec, Publish, webrtc};
use crate::loadtest::signal::SignalError;
use crate::loadtest::stats::Window;

/// The videoroom's "room already exists": another participant created it first.
const ROOM_EXISTS: i64 = 427;
/// How often the room's publishers are listed while a subscriber waits for all of them.
const LIST_EVERY: Duration = Duration::from_millis(50);

/// The videoroom of a load-test session: a number from its id (Janus rooms are numbers), kept
/// below 2^53 so that every JSON reader keeps it exact.
pub fn room_of(session: &str) -> u64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash & ((1 << 53) - 1)).max(1)
}

/// One participant in a Janus videoroom.
pub struct Participant {
    pub uid: String,
    session: Session,
    shared: Arc<Shared>,
    room: u64,
    /// The handle that made the room and publishes; its events until `publish` takes them.
    control: u64,
    control_events: Mutex<Option<mpsc::UnboundedReceiver<Value>>>,
    /// Its own publisher id, once it publishes.
    feed: Mutex<Option<u64>>,
    pcs: Mutex<Vec<Arc<dyn PeerConnection>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    bind: std::net::IpAddr,
    timeout: Duration,
}

impl Participant {
    /// Connects, creates a Janus session and makes sure the session's room exists with room
    /// for `publishers`. Every network wait is bounded by `spec.timeout`; received media is
    /// counted against `window`.
    pub async fn join(
        spec: &JoinSpec,
        window: Arc<Window>,
        publishers: u32,
    ) -> Result<Participant, ClientError> {
        let (session, tasks) = Session::connect(&spec.url, spec.timeout).await?;
        let room = room_of(&spec.sid);
        let control = match open_room(&session, room, &spec.sid, publishers, spec.timeout).await {
            Ok(handle) => handle,
            Err(error) => {
                // Janus destroys the sessions of a WebSocket that closes.
                tasks.iter().for_each(JoinHandle::abort);
                return Err(error);
            }
        };
        Ok(Participant {
            uid: spec.uid.clone(),
            shared: Shared::new(window, spec.rtx),
            room,
            control: control.id,
            control_events: Mutex::new(Some(control.events)),
            feed: Mutex::default(),
            pcs: Mutex::default(),
            tasks: Mutex::new(tasks),
            bind: spec.bind,
            timeout: spec.timeout,
            session,
        })
    }

    /// Joins the room as a publisher, offers `tracks` and starts generating media on them
    /// at `shape`, with a video keyframe every `keyframe_interval` and on PLI/FIR.
    pub async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError> {
        let joined = self
            .session
            .message(
                self.control,
                json!({"request": "join", "ptype": "publisher", "room": self.room, "display": self.uid}),
                None,
                self.timeout,
            )
            .await?;
        let feed = joined.data["id"].as_u64().ok_or_else(|| {
            SignalError::Protocol(format!(
                "the videoroom's joined event has no publisher id: {}",
                joined.data
            ))
        })?;
        *lock(&self.feed) = Some(feed);
        let (candidates_tx, candidates) = mpsc::unbounded_channel();
        let pc = new_pc(Role::Publisher, &self.shared, &candidates_tx, self.bind).await?;
        lock(&self.pcs).push(pc.clone());
        let added = client::add_tracks(&pc, &self.uid, tracks).await?;
        let offer = client::local_offer(
            &pc,
            "creating the publisher's offer",
            "setting the publisher's offer",
        )
        .await?;
        let reply = self
            .session
            .message(
                self.control,
                json!({"request": "publish", "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": offer.sdp})),
                self.timeout,
            )
            .await?;
        let answer = jsep_sdp(&reply.jsep, "answer", "publish")?;
        pc.set_remote_description(
            RTCSessionDescription::answer(answer).map_err(webrtc("parsing Janus's answer"))?,
        )
        .await
        .map_err(webrtc("applying Janus's answer"))?;
        let events = lock(&self.control_events).take();
        self.exchange_candidates(self.control, events, candidates, pc);
        let (tasks, _local) =
            client::start_media(&self.shared, added, shape, keyframe_interval).await?;
        lock(&self.tasks).extend(tasks);
        Ok(())
    }

    /// Subscribes to every publisher in the room but itself, once `expected` of them are
    /// publishing (within the timeout), on one subscriber handle and PeerConnection.
    pub async fn subscribe(&self, expected: u32) -> Result<(), ClientError> {
        let feeds = self.publishing_feeds(expected).await?;
        if feeds.is_empty() {
            return Ok(());
        }
        let handle = self.session.attach(api::VIDEOROOM, self.timeout).await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let attached = self
            .session
            .message(
                handle.id,
                json!({"request": "join", "ptype": "subscriber", "room": self.room, "streams": streams}),
                None,
                self.timeout,
            )
            .await?;
        let offer = jsep_sdp(&attached.jsep, "offer", "join as a subscriber")?;
        let (candidates_tx, candidates) = mpsc::unbounded_channel();
        let pc = new_pc(Role::Subscriber, &self.shared, &candidates_tx, self.bind).await?;
        lock(&self.pcs).push(pc.clone());
        let answer = client::answer_remote_offer(&pc, offer).await?;
        self.session
            .message(
                handle.id,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer.sdp})),
                self.timeout,
            )
            .await?;
        self.exchange_candidates(handle.id, Some(handle.events), candidates, pc);
        Ok(())
    }

    /// The publisher ids in the room other than its own, polled until there are `expected`
    /// or the timeout passes (a publisher is listed once its PeerConnection is up).
    async fn publishing_feeds(&self, expected: u32) -> Result<Vec<u64>, ClientError> {
        let own = *lock(&self.feed);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let listed = self
                .session
                .message(
                    self.control,
                    json!({"request": "listparticipants", "room": self.room}),
                    None,
                    self.timeout,
                )
                .await?;
            let feeds: Vec<u64> = listed.data["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["publisher"] == true)
                .filter_map(|p| p["id"].as_u64())
                .filter(|id| Some(*id) != own)
                .collect();
            if feeds.len() >= expected as usize {
                return Ok(feeds);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SignalError::Protocol(format!(
                    "only {} of {expected} publishers were publishing in Janus room {} after {:?}",
                    feeds.len(),
                    self.room,
                    self.timeout
                ))
                .into());
            }
            tokio::time::sleep(LIST_EVERY).await;
        }
    }

    /// Trickles the PC's candidates to `handle`, and applies Janus's candidates and notes its
    /// hang-ups for that handle.
    fn exchange_candidates(
        &self,
        handle: u64,
        events: Option<mpsc::UnboundedReceiver<Value>>,
        mut candidates: mpsc::UnboundedReceiver<(u8, RTCIceCandidateInit)>,
        pc: Arc<dyn PeerConnection>,
    ) {
        let session = self.session.clone();
        let outgoing = tokio::spawn(async move {
            while let Some((_, candidate)) = candidates.recv().await {
                // Janus bundles everything on its first m-line and drops a candidate for
                // any other mid, so none is named.
                let init = json!({"candidate": candidate.candidate, "sdpMLineIndex": 0});
                if session.trickle(handle, init).is_err() {
                    break;
                }
            }
        });
        let mut tasks = vec![outgoing];
        if let Some(mut events) = events {
            let shared = self.shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    match event["janus"].as_str() {
                        Some("trickle") => {
                            let candidate = &event["candidate"];
                            if candidate["completed"] == true {
                                continue;
                            }
                            match serde_json::from_value::<RTCIceCandidateInit>(candidate.clone()) {
                                Ok(candidate) => {
                                    if let Err(error) = pc.add_ice_candidate(candidate).await {
                                        shared
                                            .problem(format!("adding a Janus candidate: {error}"));
                                    }
                                }
                                Err(error) => {
                                    shared.problem(format!("a malformed Janus candidate: {error}"))
                                }
                            }
                        }
                        Some("hangup") => shared.problem(format!(
                            "Janus hung up a PeerConnection: {}",
                            event["reason"].as_str().unwrap_or("no reason given")
                        )),
                        _ => {}
                    }
                }
            }));
        }
        lock(&self.tasks).extend(tasks);
    }

    /// The remote tracks seen so far, in arrival order.
    pub fn tracks(&self) -> Vec<Arc<RemoteTrack>> {
        self.shared.tracks()
    }

    /// Background failures and stray Janus errors so far.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.shared.problems();
        problems.extend(self.session.problems());
        problems
    }

    /// Why the WebSocket closed, once it has.
    pub fn signal_closed(&self) -> Option<String> {
        self.session.closed_reason()
    }

    /// Leaves: destroys the Janus session, stops the generators and closes the
    /// PeerConnections (each within 2 s).
    pub async fn close(&self) {
        self.session.destroy();
        let pcs: Vec<_> = lock(&self.pcs).drain(..).collect();
        for pc in pcs {
            let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Attaches the participant's first handle and creates the session's room on it, with room
/// for `publishers`, unless another participant already has.
async fn open_room(
    session: &Session,
    room: u64,
    sid: &str,
    publishers: u32,
    timeout: Duration,
) -> Result<Handle, ClientError> {
    let handle = session.attach(api::VIDEOROOM, timeout).await?;
    let create = json!({
        "request": "create",
        "room": room,
        "description": sid,
        "publishers": publishers.max(1),
        "audiocodec": "opus",
        "videocodec": "vp8",
    });
    match session.message(handle.id, create, None, timeout).await {
        Ok(_) => Ok(handle),
        Err(SignalError::Janus {
            code: ROOM_EXISTS, ..
        }) => Ok(handle),
        Err(error) => Err(error.into()),
    }
}

/// The SDP of a JSEP of type `kind` that Janus sent with its answer to `request`.
fn jsep_sdp(jsep: &Option<Value>, kind: &str, request: &str) -> Result<String, ClientError> {
    let jsep = jsep.as_ref().filter(|j| j["type"] == kind).ok_or_else(|| {
        SignalError::Protocol(format!(
            "Janus answered {request:?} without an {kind}: {jsep:?}"
        ))
    })?;
    jsep["sdp"].as_str().map(str::to_owned).ok_or_else(|| {
        SignalError::Protocol(format!("Janus's {kind} to {request:?} has no sdp")).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_maps_to_one_exact_room() {
        let room = room_of("loadtest-abc");
        assert_eq!(room, room_of("loadtest-abc"));
        assert_ne!(room, room_of("loadtest-abd"));
        assert!(room > 0 && room < 1 << 53);
    }

    #[test]
    fn janus_jsep_is_checked_for_its_type() {
        let offer = Some(json!({"type": "offer", "sdp": "v=0\r\n"}));
        assert_eq!(jsep_sdp(&offer, "offer", "join").unwrap(), "v=0\r\n");
        assert!(jsep_sdp(&offer, "answer", "publish").is_err());
        assert!(jsep_sdp(&None, "offer", "join").is_err());
    }
}
