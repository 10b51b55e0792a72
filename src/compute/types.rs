//! The Compute Engine v1 resources this client reads and writes, as the REST API spells them
//! (camelCase JSON). Only the fields ion cluster uses are modelled; unknown fields in
//! responses are ignored, and requests carry nothing Compute would not recognise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `compute#instance`, as `instances.get` and `instances.list` return it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Instance {
    pub name: String,
    /// A URL ending in `zones/<zone>/machineTypes/<type>`.
    pub machine_type: String,
    /// `PROVISIONING`, `STAGING`, `RUNNING`, `STOPPING`, `SUSPENDING`, `SUSPENDED`,
    /// `REPAIRING` or `TERMINATED`.
    pub status: String,
    /// A URL ending in `zones/<zone>`.
    pub zone: String,
    pub labels: BTreeMap<String, String>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub metadata: Metadata,
    pub creation_timestamp: String,
    pub self_link: String,
}

impl Instance {
    /// The external IP of the first interface, once GCE assigned one.
    pub fn nat_ip(&self) -> Option<&str> {
        self.network_interfaces
            .iter()
            .flat_map(|n| &n.access_configs)
            .find_map(|a| a.nat_ip.as_deref())
    }

    /// The value of metadata item `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .items
            .iter()
            .find(|i| i.key == key)
            .map(|i| i.value.as_str())
    }
}

/// The last path segment of a Compute URL: `.../zones/europe-west1-b` → `europe-west1-b`.
pub fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    #[serde(rename = "networkIP", skip_serializing_if = "Option::is_none")]
    pub network_ip: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_configs: Vec<AccessConfig>,
}

/// An external IP: `ONE_TO_ONE_NAT` with an ephemeral address when `natIP` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(rename = "natIP", skip_serializing_if = "Option::is_none")]
    pub nat_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_tier: Option<String>,
}

/// `compute#instanceList`: one page of `instances.list`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceList {
    pub items: Vec<Instance>,
    pub next_page_token: Option<String>,
}

/// The body of `instances.insert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsertInstance {
    pub name: String,
    /// `zones/<zone>/machineTypes/<type>`.
    pub machine_type: String,
    pub disks: Vec<AttachedDisk>,
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedDisk {
    pub boot: bool,
    pub auto_delete: bool,
    /// `PERSISTENT`.
    #[serde(rename = "type")]
    pub kind: String,
    pub initialize_params: DiskInitializeParams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskInitializeParams {
    /// `projects/<p>/global/images/<image>` or `.../images/family/<family>`.
    pub source_image: String,
    /// An int64, which Compute's JSON carries as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size_gb: Option<String>,
    /// `zones/<zone>/diskTypes/<type>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Metadata {
    pub items: Vec<MetadataItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataItem {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub email: String,
    pub scopes: Vec<String>,
}

/// Spot VMs: `provisioningModel: SPOT`, deleted rather than stopped when preempted, and
/// never restarted by GCE (the autoscaler replaces them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    pub provisioning_model: String,
    pub instance_termination_action: String,
    pub automatic_restart: bool,
    pub on_host_maintenance: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    pub items: Vec<String>,
}

/// `compute#operation`: what every mutating call returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Operation {
    pub kind: String,
    /// A uint64, as a string.
    pub id: String,
    pub name: String,
    /// A URL ending in `zones/<zone>`.
    pub zone: String,
    /// `insert`, `delete`, ...
    pub operation_type: String,
    pub target_link: String,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationErrors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_message: Option<String>,
}

impl Operation {
    pub fn is_done(&self) -> bool {
        self.status == "DONE"
    }

    /// The errors of a finished operation; empty when it succeeded.
    pub fn errors(&self) -> &[OperationError] {
        self.error.as_ref().map_or(&[], |e| &e.errors)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperationErrors {
    pub errors: Vec<OperationError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperationError {
    /// e.g. `ZONE_RESOURCE_POOL_EXHAUSTED`, `QUOTA_EXCEEDED`.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub message: String,
}

/// The body of an HTTP error: `{"error": {"code", "message", "errors": [{reason, ...}]}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: ErrorStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorStatus {
    pub code: u16,
    pub message: String,
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorItem {
    pub reason: String,
    pub message: String,
    pub domain: String,
}
