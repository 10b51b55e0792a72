//! The GCE machine-type catalogue (vCPUs as GCE documents them) and the choice of the smallest
//! type whose capacity holds a demand under a class's headroom.

use super::ClassSpec;
use crate::model::{SessionClass, Units};

/// One machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineType {
    pub name: &'static str,
    pub vcpus: u32,
}

/// Ordered by vCPUs; among equal vCPUs the one preferred for an SFU comes first (n2-highcpu
/// before the shared-core e2-small and before compute-optimised c2).
pub const CATALOGUE: &[MachineType] = &[
    MachineType {
        name: "n1-standard-1",
        vcpus: 1,
    },
    MachineType {
        name: "n2-highcpu-2",
        vcpus: 2,
    },
    MachineType {
        name: "e2-small",
        vcpus: 2,
    },
    MachineType {
        name: "n2-highcpu-4",
        vcpus: 4,
    },
    MachineType {
        name: "c2-standard-4",
        vcpus: 4,
    },
    MachineType {
        name: "n2-highcpu-8",
        vcpus: 8,
    },
    MachineType {
        name: "c2-standard-8",
        vcpus: 8,
    },
    MachineType {
        name: "n2-highcpu-16",
        vcpus: 16,
    },
    MachineType {
        name: "c2-standard-16",
        vcpus: 16,
    },
    MachineType {
        name: "n2-highcpu-32",
        vcpus: 32,
    },
];

/// Units per vCPU until `ionctl loadtest` calibration exists: the seed saw pion carry about
/// 150–200 subscribers per n1 vCPU, and the lower end is the safe one.
pub const DEFAULT_UNITS_PER_VCPU: Units = 150;

impl MachineType {
    pub fn by_name(name: &str) -> Option<Self> {
        CATALOGUE.iter().copied().find(|m| m.name == name)
    }

    /// `vcpus × units_per_vcpu`.
    pub fn capacity(&self, units_per_vcpu: Units) -> Units {
        self.vcpus.saturating_mul(units_per_vcpu)
    }
}

/// The smallest catalogue type on which `demand` fits under the headroom of `class`, or
/// `None` when even the largest is too small.
pub fn smallest_fitting(
    demand: Units,
    units_per_vcpu: Units,
    class: &ClassSpec,
) -> Option<MachineType> {
    CATALOGUE
        .iter()
        .copied()
        .find(|m| demand <= class.limit(m.capacity(units_per_vcpu)))
}

/// The most nodes one livestream spans: 16 of the largest type hold 65,000 viewers. A split
/// adds a placement key per edge to the reservation transaction, and a group commit of 32
/// reservations (3 operations each) with one split of 16 stays under etcd's 128 operations.
pub const MAX_SPAN_NODES: u32 = 16;

/// The shares `(origin, each edge)` of a session of `class` and `size` (`demand` units) over
/// `nodes` nodes. Each node takes an equal share of the participants, plus its relays:
/// - a livestream's origin one unit more per edge, for the relay it feeds (one viewer's
///   worth), and its edges nothing more;
/// - a conference's nodes, every one of them, two units per speaker (up to 6): each remote
///   speaker's stream arrives once at each node, and each local one leaves once per other
///   node, which over the session averages under one stream per speaker per node.
pub fn split_shares(class: SessionClass, size: u32, demand: Units, nodes: u32) -> (Units, Units) {
    if nodes <= 1 {
        return (demand, demand);
    }
    let share = demand.div_ceil(nodes);
    match class {
        SessionClass::Conference => {
            let relays = share.saturating_add(2 * size.min(6));
            (relays, relays)
        }
        _ => (share.saturating_add(nodes.saturating_sub(1)), share),
    }
}

/// The fewest nodes of `room` units each (2 or more, at most [`MAX_SPAN_NODES`]) that hold a
/// session of `class` and `size` (`demand` units) split by [`split_shares`].
pub fn span_nodes(class: SessionClass, size: u32, demand: Units, room: Units) -> Option<u32> {
    (2..=MAX_SPAN_NODES).find(|&nodes| split_shares(class, size, demand, nodes).0 <= room)
}

/// The largest catalogue type.
pub fn largest() -> MachineType {
    // The catalogue is a non-empty constant ordered by vCPUs.
    *CATALOGUE.last().expect("the catalogue is not empty")
}

/// The catalogue's type names, for messages and flag checks.
pub fn known_types() -> String {
    CATALOGUE
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionClass;

    #[test]
    fn catalogue_has_the_documented_vcpus_in_order() {
        assert_eq!(MachineType::by_name("e2-small").map(|m| m.vcpus), Some(2));
        assert_eq!(
            MachineType::by_name("n1-standard-1").map(|m| m.vcpus),
            Some(1)
        );
        assert_eq!(
            MachineType::by_name("n2-highcpu-32").map(|m| m.vcpus),
            Some(32)
        );
        assert_eq!(
            MachineType::by_name("c2-standard-16").map(|m| m.vcpus),
            Some(16)
        );
        assert!(CATALOGUE.windows(2).all(|w| w[0].vcpus <= w[1].vcpus));
        assert_eq!(largest().name, "n2-highcpu-32");
    }

    #[test]
    fn smallest_fitting_respects_headroom() {
        let meeting = ClassSpec::of(SessionClass::Meeting);
        let conference = ClassSpec::of(SessionClass::Conference);
        let name = |m: Option<MachineType>| m.map(|m| m.name);
        // 150 units per vCPU: n1-standard-1 holds 150 × 0.8 = 120 meeting units.
        assert_eq!(
            name(smallest_fitting(120, 150, &meeting)),
            Some("n1-standard-1")
        );
        assert_eq!(
            name(smallest_fitting(121, 150, &meeting)),
            Some("n2-highcpu-2")
        );
        // A conference of 300 (1,794 units) at 0.75 needs 2,392 units: 16 vCPUs.
        assert_eq!(
            name(smallest_fitting(1794, 150, &conference)),
            Some("n2-highcpu-16")
        );
        assert_eq!(
            name(smallest_fitting(1794, 100, &conference)),
            Some("n2-highcpu-32")
        );
        assert_eq!(smallest_fitting(10_000, 150, &conference), None);
    }
}
