//! The few machine types the local provider can imitate, with their vCPUs. Kept private and
//! minimal: the capacity model owns the real catalogue.

const MACHINE_TYPES: &[(&str, u32)] = &[
    ("e2-small", 2),
    ("n1-standard-1", 1),
    ("n2-highcpu-2", 2),
    ("n2-highcpu-4", 4),
    ("n2-highcpu-8", 8),
    ("n2-highcpu-16", 16),
    ("n2-highcpu-32", 32),
    ("c2-standard-4", 4),
    ("c2-standard-8", 8),
    ("c2-standard-16", 16),
];

pub(super) fn vcpus(machine_type: &str) -> Option<u32> {
    MACHINE_TYPES
        .iter()
        .find(|(name, _)| *name == machine_type)
        .map(|(_, vcpus)| *vcpus)
}

pub(super) fn known() -> String {
    MACHINE_TYPES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn vcpus_come_from_the_name() {
        assert_eq!(super::vcpus("n2-highcpu-4"), Some(4));
        assert_eq!(super::vcpus("n1-standard-1"), Some(1));
        assert_eq!(super::vcpus("c2-standard-16"), Some(16));
        assert_eq!(super::vcpus("n2-highcpu-3"), None);
    }
}
