//! The Compute Engine provider: one VM per instance, created from a configured image with an
//! external IP, labelled with its cluster (and hold), and started by a `startup-script`
//! that configures and starts `ion-agent` under systemd. Zones are tried in the configured
//! order; a zone without capacity or quota passes the request to the next one, with a new
//! `requestId` there (within a zone every retry keeps its `requestId`, so a retry never
//! creates a second VM).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    CLUSTER_LABEL, HOLD_LABEL, Instance, InstanceSpec, InstanceStatus, Progress, Provider,
    ProviderError, ProviderEvent, agent_env_string, label_value, validate_name,
};
use crate::compute::types::{
    AccessConfig, AttachedDisk, DiskInitializeParams, InsertInstance, Metadata, MetadataItem,
    NetworkInterface, Scheduling, ServiceAccount, Tags, last_segment,
};
use crate::compute::{Auth, AuthMode, ClientConfig, ComputeClient, DEFAULT_BASE_URL, RetryPolicy};

/// The metadata key that carries the exact session id of a hold.
pub const HOLD_METADATA_KEY: &str = "ion-hold";
/// Where the image installs the agent.
pub const AGENT_PATH: &str = "/usr/local/bin/ion-agent";

/// The systemd unit the startup script installs: `agent/deploy/ion-agent.service`, shipped as
/// a file so that operators install the same unit on machines they run themselves.
pub const AGENT_UNIT: &str = include_str!("../../agent/deploy/ion-agent.service");
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The `[gce]` table of `~/.config/ionctl/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GceSettings {
    pub project: String,
    /// Zones to try, in order.
    pub zones: Vec<String>,
    /// Boot image with `ion-agent` at /usr/local/bin, e.g.
    /// `projects/my-project/global/images/family/ion-agent`.
    pub image: String,
    pub network: String,
    pub subnetwork: Option<String>,
    /// The VMs' service account (email); none is attached when unset.
    pub service_account: Option<String>,
    /// Spot VMs: cheaper, preemptible, deleted on preemption.
    pub spot: bool,
    /// The value of the `ion-cluster` label that marks this cluster's VMs.
    pub cluster: String,
    /// Network tags, for firewall rules.
    pub tags: Vec<String>,
    pub disk_size_gb: Option<u32>,
    /// e.g. `pd-balanced`.
    pub disk_type: Option<String>,
    pub auth: AuthMode,
    /// A service-account key (JSON) for `auth = "key-file"`.
    pub key_file: Option<PathBuf>,
    /// The metadata server for `auth = "metadata"` (`http://host:port`), e.g. a proxy;
    /// `GCE_METADATA_HOST` (`host:port`) overrides it, as in every Google library.
    pub metadata_endpoint: Option<String>,
    /// The Compute v1 endpoint; tests point it at a local server.
    pub base_url: String,
    /// etcd endpoints as the VMs reach them, when they differ from ionctl's.
    pub agent_etcd: Vec<String>,
    /// Signaling (WebSocket) TCP port of the agents.
    pub signal_port: u16,
    /// First media UDP port; worker i of an agent uses `udp_port + i`.
    pub udp_port: u16,
    pub units_per_vcpu: Option<u32>,
}

impl Default for GceSettings {
    fn default() -> Self {
        Self {
            project: String::new(),
            zones: Vec::new(),
            image: String::new(),
            network: "global/networks/default".to_owned(),
            subnetwork: None,
            service_account: None,
            spot: false,
            cluster: "ion".to_owned(),
            tags: vec!["ion-agent".to_owned()],
            disk_size_gb: None,
            disk_type: None,
            auth: AuthMode::Adc,
            key_file: None,
            metadata_endpoint: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            agent_etcd: Vec::new(),
            signal_port: 7000,
            udp_port: 50000,
            units_per_vcpu: None,
        }
    }
}

impl GceSettings {
    fn require(&self) -> Result<(), ProviderError> {
        let missing = |key: &str, env: &str| ProviderError::Config {
            provider: "gce",
            message: format!("set [gce] {key} in the config file or {env}"),
        };
        if self.project.is_empty() {
            return Err(missing("project", "IONCTL_GCE_PROJECT"));
        }
        if self.cluster.is_empty() {
            return Err(missing("cluster", "IONCTL_GCE_CLUSTER"));
        }
        Ok(())
    }

    fn auth(&self) -> Result<Auth, ProviderError> {
        Ok(match (self.auth, &self.key_file) {
            (AuthMode::Adc, _) => Auth::Adc,
            (AuthMode::Metadata, _) => Auth::Metadata {
                endpoint: self.metadata_endpoint.clone(),
            },
            (AuthMode::KeyFile, Some(path)) => Auth::KeyFile(path.clone()),
            (AuthMode::KeyFile, None) => {
                return Err(ProviderError::Config {
                    provider: "gce",
                    message: "auth = \"key-file\" needs [gce] key_file (IONCTL_GCE_KEY_FILE)"
                        .to_owned(),
                });
            }
        })
    }
}

/// Creates, finds and deletes this cluster's VMs.
#[derive(Debug, Clone)]
pub struct GceProvider {
    client: ComputeClient,
    settings: GceSettings,
}

impl GceProvider {
    pub fn new(settings: GceSettings) -> Result<Self, ProviderError> {
        Self::with_retry(settings, RetryPolicy::default(), Duration::from_secs(1))
    }

    /// With a retry policy and operation poll interval of the caller's choice (tests use
    /// short ones).
    pub fn with_retry(
        settings: GceSettings,
        retry: RetryPolicy,
        operation_poll: Duration,
    ) -> Result<Self, ProviderError> {
        settings.require()?;
        let mut config = ClientConfig::new(&settings.project, settings.auth()?);
        config.base_url = settings.base_url.clone();
        config.retry = retry;
        config.operation_poll = operation_poll;
        Ok(Self {
            client: ComputeClient::new(config)?,
            settings,
        })
    }

    pub fn settings(&self) -> &GceSettings {
        &self.settings
    }

    /// The `instances.insert` body for `spec` in `zone`.
    pub fn insert_body(
        &self,
        spec: &InstanceSpec,
        zone: &str,
    ) -> Result<InsertInstance, ProviderError> {
        let settings = &self.settings;
        if settings.image.is_empty() {
            return Err(ProviderError::Config {
                provider: "gce",
                message: "set [gce] image (IONCTL_GCE_IMAGE or --image) to an image with \
                          ion-agent at /usr/local/bin/ion-agent"
                    .to_owned(),
            });
        }
        let mut labels = spec.labels.clone();
        labels.insert(CLUSTER_LABEL.to_owned(), label_value(&settings.cluster));
        let mut metadata = vec![MetadataItem {
            key: "startup-script".to_owned(),
            value: startup_script(spec, settings, zone)?,
        }];
        if let Some(sid) = &spec.hold_for {
            labels.insert(HOLD_LABEL.to_owned(), label_value(sid));
            metadata.push(MetadataItem {
                key: HOLD_METADATA_KEY.to_owned(),
                value: sid.clone(),
            });
        }
        Ok(InsertInstance {
            name: spec.name.clone(),
            machine_type: format!("zones/{zone}/machineTypes/{}", spec.machine_type),
            disks: vec![AttachedDisk {
                boot: true,
                auto_delete: true,
                kind: "PERSISTENT".to_owned(),
                initialize_params: DiskInitializeParams {
                    source_image: settings.image.clone(),
                    disk_size_gb: settings.disk_size_gb.map(|gb| gb.to_string()),
                    disk_type: settings
                        .disk_type
                        .as_ref()
                        .map(|t| format!("zones/{zone}/diskTypes/{t}")),
                },
            }],
            network_interfaces: vec![NetworkInterface {
                network: Some(settings.network.clone()),
                subnetwork: settings.subnetwork.clone(),
                network_ip: None,
                access_configs: vec![AccessConfig {
                    kind: "ONE_TO_ONE_NAT".to_owned(),
                    name: "External NAT".to_owned(),
                    nat_ip: None,
                    network_tier: Some("PREMIUM".to_owned()),
                }],
            }],
            labels,
            metadata: Metadata { items: metadata },
            service_accounts: settings
                .service_account
                .iter()
                .map(|email| ServiceAccount {
                    email: email.clone(),
                    scopes: vec![CLOUD_PLATFORM_SCOPE.to_owned()],
                })
                .collect(),
            scheduling: settings.spot.then(|| Scheduling {
                provisioning_model: "SPOT".to_owned(),
                instance_termination_action: "DELETE".to_owned(),
                automatic_restart: false,
                on_host_maintenance: "TERMINATE".to_owned(),
            }),
            tags: (!settings.tags.is_empty()).then(|| Tags {
                items: settings.tags.clone(),
            }),
        })
    }

    fn cluster_filter(&self) -> String {
        format!(
            "labels.{CLUSTER_LABEL} = \"{}\"",
            label_value(&self.settings.cluster)
        )
    }
}

fn to_instance(vm: crate::compute::types::Instance) -> Instance {
    Instance {
        zone: last_segment(&vm.zone).to_owned(),
        machine_type: last_segment(&vm.machine_type).to_owned(),
        status: InstanceStatus::from_gce(&vm.status),
        address: vm.nat_ip().map(str::to_owned),
        hold_for: vm.metadata_value(HOLD_METADATA_KEY).map(str::to_owned),
        provider: "gce".to_owned(),
        name: vm.name,
        labels: vm.labels,
    }
}

#[async_trait]
impl Provider for GceProvider {
    fn kind(&self) -> &'static str {
        "gce"
    }

    async fn create(
        &self,
        spec: &InstanceSpec,
        progress: &Progress,
    ) -> Result<Instance, ProviderError> {
        validate_name(&spec.name)?;
        let zones = match &spec.zone {
            Some(zone) => vec![zone.clone()],
            None => self.settings.zones.clone(),
        };
        if zones.is_empty() {
            return Err(ProviderError::Config {
                provider: "gce",
                message: "no zone: set [gce] zones (IONCTL_GCE_ZONES) or pass --zone".to_owned(),
            });
        }
        let name = &spec.name;
        let mut failures = Vec::new();
        for zone in zones {
            let body = self.insert_body(spec, &zone)?;
            // One id per zone, kept by every retry of this insert.
            let request_id = uuid::Uuid::new_v4().to_string();
            let unavailable = |reason: String, failures: &mut Vec<(String, String)>| {
                tracing::warn!(instance = %name, %zone, %reason, "zone unavailable; trying the next one");
                progress.report(ProviderEvent::ZoneUnavailable {
                    name: name.clone(),
                    zone: zone.clone(),
                    reason: reason.clone(),
                });
                failures.push((zone.clone(), reason));
            };
            let operation = match self.client.insert_instance(&zone, &body, &request_id).await {
                Ok(operation) => operation,
                Err(error) if error.is_capacity() => {
                    unavailable(error.to_string(), &mut failures);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            progress.report(ProviderEvent::Requested {
                name: name.clone(),
                zone: zone.clone(),
            });
            let observe = |op: &crate::compute::types::Operation| {
                progress.report(ProviderEvent::Operation {
                    name: name.clone(),
                    zone: zone.clone(),
                    operation: op.name.clone(),
                    status: op.status.clone(),
                });
            };
            match self.client.wait_done(&zone, operation, observe).await {
                Ok(_) => {}
                Err(error) if error.is_capacity() => {
                    unavailable(error.to_string(), &mut failures);
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
            progress.report(ProviderEvent::Booting {
                name: name.clone(),
                zone: zone.clone(),
            });
            let instance = match self.client.get_instance(&zone, name).await? {
                Some(vm) => to_instance(vm),
                // Created a moment ago; a read that does not see it yet is no failure.
                None => Instance {
                    name: name.clone(),
                    provider: "gce".to_owned(),
                    zone: zone.clone(),
                    machine_type: spec.machine_type.clone(),
                    status: InstanceStatus::Provisioning,
                    address: None,
                    hold_for: spec.hold_for.clone(),
                    labels: body.labels,
                },
            };
            return Ok(instance);
        }
        Err(ProviderError::NoZone {
            name: name.clone(),
            failures,
        })
    }

    async fn get(&self, name: &str, zone: &str) -> Result<Option<Instance>, ProviderError> {
        Ok(self.client.get_instance(zone, name).await?.map(to_instance))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let filter = self.cluster_filter();
        let mut instances = Vec::new();
        for zone in &self.settings.zones {
            let vms = self.client.list_instances(zone, Some(&filter)).await?;
            instances.extend(vms.into_iter().map(to_instance));
        }
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(instances)
    }

    async fn delete(
        &self,
        name: &str,
        zone: &str,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let operation = match self.client.delete_instance(zone, name, &request_id).await {
            Ok(operation) => operation,
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        progress.report(ProviderEvent::Deleting {
            name: name.to_owned(),
            zone: zone.to_owned(),
        });
        let observe = |op: &crate::compute::types::Operation| {
            progress.report(ProviderEvent::Operation {
                name: name.to_owned(),
                zone: zone.to_owned(),
                operation: op.name.clone(),
                status: op.status.clone(),
            });
        };
        self.client.wait_done(zone, operation, observe).await?;
        Ok(())
    }
}

/// Refuses values that could end a heredoc line or be read by a shell.
fn plain(what: &str, value: &str) -> Result<(), ProviderError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '\'' | '"' | '\\' | '$' | '`'));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec(format!(
            "{what} {value:?} cannot go into the startup script: use printable ASCII \
             without blanks, quotes, '\\', '$' or '`'"
        )))
    }
}

/// The `startup-script` metadata: GCE runs it as root at every boot. It writes the agent's
/// environment file and a systemd unit, and starts `ion-agent`. The hold is written on the
/// first boot only, so a VM that reboots later is not held again for an old session.
pub fn startup_script(
    spec: &InstanceSpec,
    settings: &GceSettings,
    zone: &str,
) -> Result<String, ProviderError> {
    let endpoints = if settings.agent_etcd.is_empty() {
        &spec.agent.etcd_endpoints
    } else {
        &settings.agent_etcd
    };
    if endpoints.is_empty() {
        return Err(ProviderError::InvalidSpec(
            "the agent needs etcd endpoints".to_owned(),
        ));
    }
    for endpoint in endpoints {
        plain("etcd endpoint", endpoint)?;
    }
    plain("key prefix", &spec.agent.prefix)?;
    plain("machine type", &spec.machine_type)?;
    plain("zone", zone)?;
    plain("instance name", &spec.name)?;
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert("ION_AGENT_NODE_ID", spec.name.clone());
    env.insert("ION_AGENT_ETCD_ENDPOINTS", endpoints.join(","));
    env.insert(
        "ION_AGENT_LISTEN",
        format!("0.0.0.0:{}", settings.signal_port),
    );
    // systemd's EnvironmentFile drops one level of quotes: single quotes around the
    // agent's double-quoted strings keep them strings (see `agent_env_string`).
    let string = |value: &str| format!("'{}'", agent_env_string(value));
    env.insert("ION_AGENT_ETCD__PREFIX", string(&spec.agent.prefix));
    env.insert(
        "ION_AGENT_CLUSTER__MACHINE_TYPE",
        string(&spec.machine_type),
    );
    env.insert("ION_AGENT_CLUSTER__ZONE", string(zone));
    env.insert("ION_AGENT_WEBRTC__BIND", "0.0.0.0".to_owned());
    env.insert("ION_AGENT_WEBRTC__UDP_PORT", settings.udp_port.to_string());
    if let Some(units) = spec.agent.units_per_vcpu.or(settings.units_per_vcpu) {
        env.insert("ION_AGENT_CLUSTER__UNITS_PER_VCPU", units.to_string());
    }
    let mut hold = String::new();
    if let Some(sid) = &spec.hold_for {
        crate::model::keys::validate_id("session", sid)
            .map_err(|e| ProviderError::InvalidSpec(e.to_string()))?;
        hold.push_str(&format!("ION_AGENT_CLUSTER__HOLD_FOR={}\n", string(sid)));
        if let Some(ttl) = spec.agent.hold_ttl {
            hold.push_str(&format!(
                "ION_AGENT_CLUSTER__HOLD_TTL={}\n",
                humantime::format_duration(ttl)
            ));
        }
    }
    let env_lines: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    Ok(format!(
        r#"#!/bin/bash
# ion cluster: written by ionctl spawn. GCE runs this as root at every boot; it configures
# ion-agent ({AGENT_PATH}, installed in the image) and starts it under systemd.
set -euo pipefail
md=http://metadata.google.internal/computeMetadata/v1/instance
external_ip=$(curl -sf -H 'Metadata-Flavor: Google' "$md/network-interfaces/0/access-configs/0/external-ip" || true)
mkdir -p /etc/ion-agent
cat >/etc/ion-agent/agent.env <<'ION_ENV'
{env_lines}ION_ENV
if [ -n "$external_ip" ]; then
  echo "ION_AGENT_SIGNAL__PUBLIC_HOST=$external_ip" >>/etc/ion-agent/agent.env
  echo "ION_AGENT_WEBRTC__NAT1TO1=[$external_ip]" >>/etc/ion-agent/agent.env
fi
if [ ! -e /etc/ion-agent/first-boot-done ]; then
  cat >>/etc/ion-agent/agent.env <<'ION_HOLD'
{hold}ION_HOLD
  touch /etc/ion-agent/first-boot-done
fi
cat >/etc/systemd/system/ion-agent.service <<'ION_UNIT'
{AGENT_UNIT}ION_UNIT
systemctl daemon-reload
systemctl enable ion-agent.service
systemctl restart ion-agent.service
"#
    ))
}
