//! The Compute Engine v1 REST client: `instances.insert/get/list/delete` and
//! `zoneOperations.wait/get`, with a bearer token on every request, retries with jittered
//! exponential backoff on 429, 5xx and transport failures, and a `requestId` on every
//! mutating call that the caller keeps across retries, so a retried insert never creates a
//! second instance.

use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::GceError;
use super::auth::{Auth, TokenSource};
use super::types::{ErrorBody, InsertInstance, Instance, InstanceList, Operation};

/// The public Compute Engine v1 endpoint.
pub const DEFAULT_BASE_URL: &str = "https://compute.googleapis.com/compute/v1";

/// Backoff between attempts of one request: `initial_delay` doubling up to `max_delay`,
/// each delay drawn uniformly from its upper half ("equal jitter") so a fleet of callers
/// does not retry in step. A `Retry-After` header is honoured up to `max_delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(16),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The pause after the `failed`-th failed attempt (1-based).
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        crate::backoff::delay(self.initial_delay, self.max_delay, failed)
            .max(retry_after.unwrap_or_default().min(self.max_delay))
    }
}

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://compute.googleapis.com/compute/v1`, or a test server.
    pub base_url: String,
    pub project: String,
    pub auth: Auth,
    pub retry: RetryPolicy,
    /// How long an operation may take before [`ComputeClient::wait_done`] gives up.
    pub operation_timeout: Duration,
    /// The pause between polls when `zoneOperations.wait` answers early.
    pub operation_poll: Duration,
}

impl ClientConfig {
    pub fn new(project: &str, auth: Auth) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            project: project.to_owned(),
            auth,
            retry: RetryPolicy::default(),
            operation_timeout: Duration::from_secs(600),
            operation_poll: Duration::from_secs(1),
        }
    }
}

/// The base URL of a Google API (checked: it must carry a path) and an HTTP client for it
/// with `timeout` per request; shared by the Compute and Cloud Storage clients.
pub fn api_client(base_url: &str, timeout: Duration) -> Result<(Url, reqwest::Client), GceError> {
    let base = Url::parse(base_url.trim_end_matches('/'))
        .map_err(|e| GceError::Client(format!("bad base URL {base_url:?}: {e}")))?;
    if base.cannot_be_a_base() {
        return Err(GceError::Client(format!(
            "bad base URL {base_url:?}: it cannot carry a path"
        )));
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .user_agent(concat!("ion-cluster/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GceError::Client(e.to_string()))?;
    Ok((base, http))
}

/// A Compute Engine client for one project. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ComputeClient {
    http: reqwest::Client,
    base: Url,
    project: String,
    tokens: TokenSource,
    retry: RetryPolicy,
    operation_timeout: Duration,
    operation_poll: Duration,
}

/// `zoneOperations.wait` holds the request for up to 2 minutes.
const WAIT_REQUEST_TIMEOUT: Duration = Duration::from_secs(150);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl ComputeClient {
    pub fn new(config: ClientConfig) -> Result<Self, GceError> {
        let (base, http) = api_client(&config.base_url, REQUEST_TIMEOUT)?;
        Ok(Self {
            http,
            base,
            project: config.project,
            tokens: TokenSource::new(&config.auth)?,
            retry: config.retry,
            operation_timeout: config.operation_timeout,
            operation_poll: config.operation_poll,
        })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // A base URL that can be a base (checked in `new`) always has path segments.
        url.path_segments_mut()
            .expect("the base URL can carry a path")
            .pop_if_empty()
            .extend(["projects", self.project.as_str(), "zones"])
            .extend(segments);
        url
    }

    /// `instances.insert`. `request_id` (a UUID) makes retries of this call idempotent: keep
    /// it for every retry of the same insert, and use a new one for another zone.
    pub async fn insert_instance(
        &self,
        zone: &str,
        body: &InsertInstance,
        request_id: &str,
    ) -> Result<Operation, GceError> {
        let url = self.url(&[zone, "instances"]);
        self.call(Method::POST, url, &[("requestId", request_id)], Some(body))
            .await
    }

    /// `instances.get`; `None` when the instance does not exist.
    pub async fn get_instance(&self, zone: &str, name: &str) -> Result<Option<Instance>, GceError> {
        let url = self.url(&[zone, "instances", name]);
        match self.call(Method::GET, url, &[], None::<&()>).await {
            Ok(instance) => Ok(Some(instance)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `instances.list` of one zone, every page, with an optional filter such as
    /// `labels.ion-cluster = "prod"`.
    pub async fn list_instances(
        &self,
        zone: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Instance>, GceError> {
        let mut instances = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("maxResults", "500")];
            if let Some(filter) = filter {
                query.push(("filter", filter));
            }
            if let Some(token) = &page_token {
                query.push(("pageToken", token.as_str()));
            }
            let url = self.url(&[zone, "instances"]);
            let page: InstanceList = self
                .call(Method::GET, url.clone(), &query, None::<&()>)
                .await?;
            instances.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                // A server that hands back the token it was given would page for ever.
                Some(token) if page_token.as_ref() == Some(&token) => {
                    return Err(GceError::Decode {
                        method: "GET".to_owned(),
                        url: url.to_string(),
                        message: format!(
                            "the listing returned the page token it was asked for ({token}) \
                             after {} instances; it would never end",
                            instances.len()
                        ),
                    });
                }
                Some(token) => page_token = Some(token),
                None => return Ok(instances),
            }
        }
    }

    /// `instances.delete`, idempotent through `request_id` like [`Self::insert_instance`].
    pub async fn delete_instance(
        &self,
        zone: &str,
        name: &str,
        request_id: &str,
    ) -> Result<Operation, GceError> {
        let url = self.url(&[zone, "instances", name]);
        self.call(
            Method::DELETE,
            url,
            &[("requestId", request_id)],
            None::<&()>,
        )
        .await
    }

    /// `zoneOperations.wait`: returns when the operation is done or after about 2 minutes,
    /// whichever comes first.
    pub async fn wait_operation(&self, zone: &str, operation: &str) -> Result<Operation, GceError> {
        let url = self.url(&[zone, "operations", operation, "wait"]);
        self.call_with_timeout(Method::POST, url, &[], None::<&()>, WAIT_REQUEST_TIMEOUT)
            .await
    }

    /// `zoneOperations.get`.
    pub async fn get_operation(&self, zone: &str, operation: &str) -> Result<Operation, GceError> {
        let url = self.url(&[zone, "operations", operation]);
        self.call(Method::GET, url, &[], None::<&()>).await
    }

    /// Waits until `operation` is DONE, calling `observe` on every status it passes through,
    /// and turns a finished operation's errors into [`GceError::Operation`].
    pub async fn wait_done(
        &self,
        zone: &str,
        mut operation: Operation,
        mut observe: impl FnMut(&Operation),
    ) -> Result<Operation, GceError> {
        let started = Instant::now();
        observe(&operation);
        while !operation.is_done() {
            if started.elapsed() > self.operation_timeout {
                return Err(GceError::OperationTimeout {
                    zone: zone.to_owned(),
                    operation: operation.name,
                    waited: started.elapsed(),
                });
            }
            let asked = Instant::now();
            let next = self.wait_operation(zone, &operation.name).await?;
            if next.status != operation.status {
                observe(&next);
            }
            operation = next;
            // The wait is best effort and may answer at once; do not spin on it.
            if !operation.is_done() && asked.elapsed() < self.operation_poll {
                tokio::time::sleep(self.operation_poll).await;
            }
        }
        if operation.errors().is_empty() {
            Ok(operation)
        } else {
            Err(GceError::Operation {
                zone: zone.to_owned(),
                operation: operation.name.clone(),
                errors: operation.errors().to_vec(),
            })
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T, GceError> {
        self.call_with_timeout(method, url, query, body, REQUEST_TIMEOUT)
            .await
    }

    /// One API call with retries. The request, `requestId` included, is the same on every
    /// attempt; only the token is fetched again (google-cloud-auth caches it).
    async fn call_with_timeout<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, GceError> {
        let mut failed = 0;
        loop {
            match self
                .call_once(method.clone(), url.clone(), query, body, timeout)
                .await
            {
                Err(error) if error.is_retryable() => {
                    failed += 1;
                    if failed >= self.retry.max_attempts {
                        return Err(GceError::RetriesExhausted {
                            attempts: failed,
                            last: Box::new(error),
                        });
                    }
                    let retry_after = match &error {
                        GceError::Api { retry_after, .. } => retry_after.map(Duration::from_secs),
                        _ => None,
                    };
                    let delay = self.retry.delay(failed, retry_after);
                    tracing::warn!(%method, %url, attempt = failed, retry_in = ?delay, %error, "Compute API call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, GceError> {
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token)
            .query(query)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| GceError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            message: super::auth::chain(&e),
            transient: !e.is_builder() && !e.is_redirect(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = if body.error.message.is_empty() {
                String::from_utf8_lossy(&bytes).chars().take(300).collect()
            } else {
                body.error.message
            };
            return Err(GceError::Api {
                status: status.as_u16(),
                method: method.to_string(),
                url: url.to_string(),
                message,
                reasons: body.error.errors.into_iter().map(|e| e.reason).collect(),
                retry_after,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| GceError::Decode {
            method: method.to_string(),
            url: url.to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_jittered_and_capped() {
        let policy = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: 5,
        };
        for _ in 0..100 {
            let first = policy.delay(1, None);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = policy.delay(3, None);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let late = policy.delay(30, None);
            assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&late));
        }
        // Retry-After wins over a shorter backoff, but never beyond max_delay.
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
