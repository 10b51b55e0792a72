//! Simulcast layer choice for one subscriber of one track. Pure: it sees which layers (RTP
//! stream ids) arrive and how many bytes each carries, and picks the one to forward for the
//! [`VideoLayer`] a subscriber wants (high by default). Layers are ranked by bytes, so it
//! works whatever the client names its layers (ion-sdk-js uses f/h/q, others h/m/l).

use std::time::{Duration, Instant};

use ion_cluster::protocol::VideoLayer;

/// How long byte counts are gathered before layers are compared.
const WINDOW: Duration = Duration::from_secs(1);

/// Up to this many layers are tracked; WebRTC simulcast uses at most three.
const MAX_LAYERS: usize = 4;

/// Per-track observation of simulcast layers.
#[derive(Debug, Clone)]
pub struct LayerMeter<R> {
    layers: [(Option<R>, u64); MAX_LAYERS],
    used: usize,
    window_start: Option<Instant>,
    /// The layers that carried bytes in the last complete window, most bytes first.
    ranked: [Option<R>; MAX_LAYERS],
    active: usize,
}

impl<R: Copy + PartialEq> Default for LayerMeter<R> {
    fn default() -> Self {
        Self {
            layers: [(None, 0); MAX_LAYERS],
            used: 0,
            window_start: None,
            ranked: [None; MAX_LAYERS],
            active: 0,
        }
    }
}

impl<R: Copy + PartialEq> LayerMeter<R> {
    /// Counts `bytes` for `rid` (None for a track without simulcast).
    pub fn observe(&mut self, rid: Option<R>, bytes: usize, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= WINDOW {
            let mut by_bytes = self.layers;
            by_bytes[..self.used].sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
            self.active = 0;
            // A layer the sender stopped carries nothing and cannot be forwarded.
            for (rid, _) in by_bytes[..self.used].iter().filter(|(_, b)| *b > 0) {
                self.ranked[self.active] = *rid;
                self.active += 1;
            }
            for layer in &mut self.layers[..self.used] {
                layer.1 = 0;
            }
            self.window_start = Some(now);
        }
        let Some(rid) = rid else {
            return;
        };
        if let Some(layer) = self.layers[..self.used]
            .iter_mut()
            .find(|(r, _)| *r == Some(rid))
        {
            layer.1 += bytes as u64;
        } else if self.used < MAX_LAYERS {
            self.layers[self.used] = (Some(rid), bytes as u64);
            self.used += 1;
        }
    }

    /// The layer for a subscriber that wants `want`: of the layers that carried bytes in the
    /// last window, high is the most bytes, low the fewest, medium the middle of three (the
    /// lower of two). Before a full window, the first layer seen. `None` when the track has
    /// no layers (forward everything) or none has been seen. `VideoLayer::None` (no video)
    /// is the caller's to honour; here it reads as low.
    pub fn pick(&self, want: VideoLayer) -> Option<R> {
        if self.active == 0 {
            return self.layers[..self.used].first().and_then(|(r, _)| *r);
        }
        let last = self.active - 1;
        let at = match want {
            VideoLayer::High => 0,
            VideoLayer::Medium => last.min(1),
            VideoLayer::Low | VideoLayer::None => last,
        };
        self.ranked[at]
    }

    /// The layer for a subscriber with no preference: the highest.
    pub fn preferred(&self) -> Option<R> {
        self.pick(VideoLayer::High)
    }
}

/// One subscriber's current layer and the layer it is waiting to switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerChoice<R> {
    pub current: Option<R>,
}

impl<R: Copy + PartialEq> LayerChoice<R> {
    /// Whether a frame of layer `rid` goes to this subscriber. A switch happens only on a
    /// keyframe of the wanted layer, so the decoder never sees a frame it cannot decode.
    pub fn accept(&mut self, rid: Option<R>, wanted: Option<R>, keyframe: bool) -> bool {
        if rid.is_none() {
            return true;
        }
        if rid == self.current {
            return true;
        }
        if rid == wanted && (keyframe || self.current.is_none()) {
            self.current = rid;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_with_most_bytes_wins_after_a_window() {
        let t0 = Instant::now();
        let mut meter = LayerMeter::default();
        meter.observe(Some('q'), 100, t0);
        meter.observe(Some('f'), 1000, t0);
        meter.observe(Some('h'), 400, t0);
        // Before a full window the first layer seen stands in.
        assert_eq!(meter.preferred(), Some('q'));
        meter.observe(Some('q'), 100, t0 + WINDOW);
        assert_eq!(meter.preferred(), Some('f'));
    }

    #[test]
    fn each_wanted_layer_maps_to_a_rank_by_bytes() {
        let t0 = Instant::now();
        let mut meter = LayerMeter::default();
        for (rid, bytes) in [('q', 100), ('h', 400), ('f', 1000)] {
            meter.observe(Some(rid), bytes, t0);
        }
        meter.observe(Some('q'), 100, t0 + WINDOW);
        assert_eq!(meter.pick(VideoLayer::High), Some('f'));
        assert_eq!(meter.pick(VideoLayer::Medium), Some('h'));
        assert_eq!(meter.pick(VideoLayer::Low), Some('q'));
        // The top layer stops: of the two left, medium is the lower.
        meter.observe(Some('h'), 400, t0 + WINDOW);
        meter.observe(Some('q'), 100, t0 + WINDOW * 2);
        assert_eq!(meter.pick(VideoLayer::High), Some('h'));
        assert_eq!(meter.pick(VideoLayer::Medium), Some('q'));
        assert_eq!(meter.pick(VideoLayer::Low), Some('q'));
    }

    #[test]
    fn no_simulcast_means_no_preference() {
        let mut meter: LayerMeter<char> = LayerMeter::default();
        meter.observe(None, 100, Instant::now());
        assert_eq!(meter.preferred(), None);
        let mut choice = LayerChoice::<char>::default();
        assert!(choice.accept(None, None, false));
    }

    #[test]
    fn switching_waits_for_a_keyframe_of_the_wanted_layer() {
        let mut choice = LayerChoice::default();
        assert!(
            choice.accept(Some('q'), Some('q'), false),
            "first layer starts at once"
        );
        assert!(
            !choice.accept(Some('f'), Some('f'), false),
            "no switch on a delta frame"
        );
        assert!(
            choice.accept(Some('q'), Some('f'), false),
            "the old layer keeps flowing"
        );
        assert!(
            choice.accept(Some('f'), Some('f'), true),
            "switch on a keyframe"
        );
        assert!(
            !choice.accept(Some('q'), Some('f'), false),
            "the old layer stops"
        );
    }
}
