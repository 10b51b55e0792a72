//! Zone and machine type from the GCE metadata server, with a short timeout so that a node
//! off GCE (or with a slow metadata server) falls back to its config and starts anyway.

use crate::config::{GceConfig, MetadataMode};

/// What the metadata server told us; each field is `None` when it did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GceIdentity {
    pub zone: Option<String>,
    pub machine_type: Option<String>,
}

fn enabled(config: &GceConfig) -> bool {
    match config.metadata {
        MetadataMode::Always => true,
        MetadataMode::Never => false,
        MetadataMode::Auto => running_on_gce(),
    }
}

/// google's own libraries honour GCE_METADATA_HOST; so do we, for tests and proxies.
fn host(config: &GceConfig) -> String {
    std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| config.metadata_host.clone())
}

/// Asks the metadata server when the config says to; never fails.
pub async fn lookup(config: &GceConfig) -> GceIdentity {
    if !enabled(config) {
        return GceIdentity::default();
    }
    let host = host(config);
    let client = match reqwest::Client::builder()
        .timeout(config.metadata_timeout)
        .connect_timeout(config.metadata_timeout)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "cannot build the metadata client; using config");
            return GceIdentity::default();
        }
    };
    let fetch = |path: &'static str| {
        let client = client.clone();
        let url = format!("http://{host}/computeMetadata/v1/instance/{path}");
        async move {
            match get(&client, &url).await {
                Ok(value) => Some(last_segment(&value).to_owned()),
                Err(error) => {
                    tracing::warn!(%url, %error, "metadata server did not answer; using config");
                    None
                }
            }
        }
    };
    let (zone, machine_type) = tokio::join!(fetch("zone"), fetch("machine-type"));
    GceIdentity { zone, machine_type }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    // A real metadata server says who it is; anything else (a captive proxy) is ignored.
    let flavor = response.headers().get("Metadata-Flavor");
    if flavor.is_none_or(|v| v != "Google") {
        return Err("the response lacks `Metadata-Flavor: Google`".to_owned());
    }
    response.text().await.map_err(|e| e.to_string())
}

/// Returns when GCE announces that this (Spot or preemptible) VM is being preempted; never
/// returns off GCE. It long-polls `instance/preempted`, which answers on change.
pub async fn preempted(config: &GceConfig) {
    if !enabled(config) {
        return std::future::pending().await;
    }
    let url = format!(
        "http://{}/computeMetadata/v1/instance/preempted?wait_for_change=true",
        host(config)
    );
    // No total timeout: the server holds the request until the value changes.
    let client = match reqwest::Client::builder()
        .connect_timeout(config.metadata_timeout)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "cannot watch for preemption");
            return std::future::pending().await;
        }
    };
    loop {
        match get(&client, &url).await {
            Ok(value) if value.trim().eq_ignore_ascii_case("TRUE") => {
                tracing::warn!("GCE preemption notice: draining and stopping");
                return;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "preemption watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// `projects/123/zones/europe-west1-b` → `europe-west1-b`.
fn last_segment(value: &str) -> &str {
    value.trim().rsplit('/').next().unwrap_or_default()
}

/// GCE VMs say so in their DMI data; checking it costs no network traffic off GCE.
fn running_on_gce() -> bool {
    std::fs::read_to_string("/sys/class/dmi/id/product_name")
        .is_ok_and(|name| name.trim() == "Google Compute Engine")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_segment_takes_the_name() {
        assert_eq!(
            last_segment("projects/1/zones/europe-west1-b\n"),
            "europe-west1-b"
        );
        assert_eq!(
            last_segment("projects/1/machineTypes/n2-highcpu-8"),
            "n2-highcpu-8"
        );
        assert_eq!(last_segment("plain"), "plain");
    }
}
