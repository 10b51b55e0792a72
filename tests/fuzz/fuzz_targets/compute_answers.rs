//! Compute Engine API answers: instances, listings, operations and error bodies decode or
//! are refused, and the reads the provider does on them (capacity errors, NAT IP, metadata)
//! never panic.
#![no_main]

use ion_cluster::compute::types::{ErrorBody, Instance, InstanceList, Operation, last_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(instance) = serde_json::from_slice::<Instance>(bytes) {
        let _ = (instance.nat_ip(), instance.metadata_value("ion-hold"));
        let _ = (
            last_segment(&instance.zone),
            last_segment(&instance.machine_type),
        );
    }
    if let Ok(list) = serde_json::from_slice::<InstanceList>(bytes) {
        let _ = (list.items.len(), list.next_page_token);
    }
    if let Ok(operation) = serde_json::from_slice::<Operation>(bytes) {
        let _ = (operation.is_done(), operation.errors().len());
    }
    if let Ok(error) = serde_json::from_slice::<ErrorBody>(bytes) {
        let _ = error
            .error
            .errors
            .iter()
            .map(|e| e.reason.len())
            .sum::<usize>();
    }
});
