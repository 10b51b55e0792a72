//! Hourly prices per machine type, on-demand and Spot. The built-in table is an
//! approximation of Compute Engine's us-central1 list prices (vCPU and memory of each type,
//! December 2025); Spot prices move daily. A TOML file replaces any row:
//!
//! ```toml
//! ["n2-highcpu-4"]
//! on_demand = 0.1434
//! spot = 0.0346
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::capacity::{CATALOGUE, known_types};

/// US dollars per hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub on_demand: f64,
    pub spot: f64,
}

/// Machine type → price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceTable(pub BTreeMap<String, Price>);

const BUILT_IN: [(&str, f64, f64); 10] = [
    ("n1-standard-1", 0.0475, 0.0100),
    ("n2-highcpu-2", 0.0717, 0.0173),
    ("e2-small", 0.0168, 0.0050),
    ("n2-highcpu-4", 0.1434, 0.0346),
    ("c2-standard-4", 0.2088, 0.0505),
    ("n2-highcpu-8", 0.2868, 0.0693),
    ("c2-standard-8", 0.4176, 0.1010),
    ("n2-highcpu-16", 0.5736, 0.1385),
    ("c2-standard-16", 0.8352, 0.2020),
    ("n2-highcpu-32", 1.1471, 0.2771),
];

impl Default for PriceTable {
    fn default() -> Self {
        Self(
            BUILT_IN
                .iter()
                .map(|(name, on_demand, spot)| {
                    (
                        (*name).to_owned(),
                        Price {
                            on_demand: *on_demand,
                            spot: *spot,
                        },
                    )
                })
                .collect(),
        )
    }
}

#[derive(Debug, Error)]
pub enum PriceError {
    #[error("not a price table: {0}; expected [\"TYPE\"] tables with on_demand and spot in $/hour")]
    Syntax(#[from] toml::de::Error),
    #[error("unknown machine type {0:?}; known: {known}", known = known_types())]
    UnknownType(String),
    #[error("{machine_type}: prices must be 0 or more, finite")]
    Negative { machine_type: String },
}

impl PriceTable {
    /// The built-in table with the rows of `text` (TOML) in place of its own.
    pub fn with_overrides(text: &str) -> Result<Self, PriceError> {
        let rows: BTreeMap<String, Price> = toml::from_str(text)?;
        let mut table = Self::default();
        for (machine_type, price) in rows {
            if !CATALOGUE.iter().any(|m| m.name == machine_type) {
                return Err(PriceError::UnknownType(machine_type));
            }
            let valid = |p: f64| p.is_finite() && p >= 0.0;
            if !(valid(price.on_demand) && valid(price.spot)) {
                return Err(PriceError::Negative { machine_type });
            }
            table.0.insert(machine_type, price);
        }
        Ok(table)
    }

    /// The price of `machine_type`; a type missing from the table is free, which the report
    /// would show as a cost of 0 (every catalogue type has a row).
    pub fn of(&self, machine_type: &str) -> Price {
        self.0.get(machine_type).copied().unwrap_or(Price {
            on_demand: 0.0,
            spot: 0.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_type_has_a_price_and_overrides_replace_rows() {
        let table = PriceTable::default();
        assert!(CATALOGUE.iter().all(|m| table.0.contains_key(m.name)));
        let edited =
            PriceTable::with_overrides("[\"n2-highcpu-4\"]\non_demand = 1.0\nspot = 0.5\n")
                .unwrap();
        assert_eq!(edited.of("n2-highcpu-4").on_demand, 1.0);
        assert_eq!(edited.of("n2-highcpu-8"), table.of("n2-highcpu-8"));
        let unknown = PriceTable::with_overrides("[m5]\non_demand = 1.0\nspot = 0.5\n");
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown machine type \"m5\"")
        );
        assert!(PriceTable::with_overrides("[\"n2-highcpu-4\"]\non_demand = 1.0\n").is_err());
    }
}
