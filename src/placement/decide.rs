//! The decision: affinity first, then the class rules, then an instance already booting for
//! the session, then the best eligible node by the request's strategy, else the capacity that
//! would be needed.

use std::cmp::Ordering;

use super::eligible::{Candidate, candidates};
use super::{Decision, Policy, Request, Snapshot, Strategy};
use crate::capacity::{ClassSpec, largest, smallest_fitting};

/// Where the session of `request` goes, given `snapshot` and `policy`. Pure and deterministic:
/// the same inputs give the same decision, whatever the order of nodes in the snapshot.
pub fn decide(snapshot: &Snapshot, request: &Request, policy: &Policy) -> Decision {
    if let Some(existing) = snapshot.sessions.iter().find(|s| s.sid == request.sid) {
        return Decision::Existing {
            node: existing.node.clone(),
        };
    }
    let spec = ClassSpec::of(request.class);
    let demand = match spec.demand(request.size) {
        Ok(demand) => demand,
        Err(error) => {
            return Decision::Refuse {
                reason: error.to_string(),
            };
        }
    };
    if let Some(instance) = snapshot.booting_for(&request.sid, policy.boot_wait) {
        // Taking another node now would strand the instance started for this session.
        return Decision::NeedCapacity {
            demand,
            machine_type: instance.machine_type.clone(),
            count: 1,
            hold_for: instance.hold_for.clone(),
            booting: Some(instance.name.clone()),
        };
    }
    let eligible = candidates(snapshot, &request.sid, &spec, demand, policy);
    if let Some(best) = eligible.iter().min_by(|a, b| rank(a, b, request.strategy)) {
        return Decision::Place {
            node: best.node.id.clone(),
            demand,
        };
    }
    let hold_for = spec.dedicated.then(|| request.sid.clone());
    if let Some(machine) = smallest_fitting(demand, policy.units_per_vcpu, &spec) {
        return Decision::NeedCapacity {
            demand,
            machine_type: machine.name.to_owned(),
            count: 1,
            hold_for,
            booting: None,
        };
    }
    let biggest = largest();
    let per_machine = spec.limit(biggest.capacity(policy.units_per_vcpu));
    if spec.dedicated && per_machine > 0 {
        // A livestream beyond one machine needs an origin and relay edges (Split); until the
        // relay exists, say how many of the largest machines it would take.
        return Decision::NeedCapacity {
            demand,
            machine_type: biggest.name.to_owned(),
            count: demand.div_ceil(per_machine),
            hold_for,
            booting: None,
        };
    }
    Decision::Refuse {
        reason: format!(
            "a {} of {} needs {demand} units, more than the largest machine type ({}, {} units \
             usable at {} units per vCPU and headroom {}) can hold; split the session or \
             raise units_per_vcpu after calibration",
            request.class,
            request.size,
            biggest.name,
            per_machine,
            policy.units_per_vcpu,
            spec.headroom
        ),
    }
}

/// `Less` means `a` wins. A node held for this session beats everything; then binpack prefers
/// used nodes and the highest utilisation after placement, spread the lowest; ties go to the
/// smaller capacity, then to the node id.
fn rank(a: &Candidate<'_>, b: &Candidate<'_>, strategy: Strategy) -> Ordering {
    let by_utilisation = match strategy {
        Strategy::Binpack => b
            .used
            .cmp(&a.used)
            .then(b.utilisation_after.total_cmp(&a.utilisation_after)),
        Strategy::Spread => a.utilisation_after.total_cmp(&b.utilisation_after),
    };
    b.held_for_this
        .cmp(&a.held_for_this)
        .then(by_utilisation)
        .then(a.node.capacity.cmp(&b.node.capacity))
        .then_with(|| a.node.id.cmp(&b.node.id))
}
