//! The etcd store: one connection, the key layout, and typed reads, watches and writes of the
//! records in [`crate::model`]. Everything that talks to etcd goes through here, so the CLI,
//! the HTTP API, the autoscaler and the agent share one notion of the schema.

mod commit;
mod diagnose;
mod drain;
mod error;
mod lease;
mod options;
mod read;
mod sessions;
mod update;
mod watch;

pub use commit::{Commit, MAX_RESERVATIONS_PER_TXN, MAX_TXN_OPS, PENDING_TTL, reservation_ops};
pub use drain::{Drained, Undrained};
pub use error::StoreError;
pub use lease::{LeaseId, NodeWrite};
pub use options::{DEFAULT_CONNECT_TIMEOUT, EtcdOptions, TlsOptions};
pub use read::{Listed, Snapshot};
pub use sessions::{Claim, IfUnplaced};
pub use watch::{Change, RawEvent, RawWatch, Watch};

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::model::Keys;

/// A connected etcd client with the cluster's key layout. Cheap to clone; clones share the
/// underlying HTTP/2 channel.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    endpoints: Vec<String>,
}

impl Store {
    /// Connects and proves that etcd answers, within `options.connect_timeout`, so a wrong
    /// endpoint fails here with [`StoreError::Unreachable`] instead of hanging later.
    pub async fn connect(options: &EtcdOptions) -> Result<Self, StoreError> {
        let keys = Keys::new(&options.prefix)?;
        let endpoints = options.endpoints.clone();
        if endpoints.is_empty() {
            return Err(StoreError::NoEndpoints);
        }
        let unreachable = |cause: String| StoreError::Unreachable {
            endpoints: endpoints.join(","),
            cause,
        };
        let timeout = options.connect_timeout;
        let connect_options = connect_options(options)?;
        let attempt = async {
            let mut client = Client::connect(&endpoints, Some(connect_options)).await?;
            // Any request proves the endpoint, credentials and permissions; this one moves
            // no data.
            client
                .get(
                    keys.prefix(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await?;
            Ok::<_, etcd_client::Error>(client)
        };
        let client = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(explain(StoreError::classify(e, &endpoints), options).await),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                )));
            }
        };
        Ok(Self {
            client,
            keys,
            endpoints,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The raw client, for the few callers (tests, benchmarks) that need an etcd call the
    /// store does not wrap.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Sorts an error of the raw client into unreachable or rejected, naming the endpoints.
    pub fn classify(&self, e: etcd_client::Error) -> StoreError {
        self.err(e)
    }

    fn err(&self, e: etcd_client::Error) -> StoreError {
        StoreError::classify(e, &self.endpoints)
    }
}

/// A failed connect, made specific about TLS where the gRPC stack was vague: a probe of our
/// own names the alert etcd refused this client with, and a refusal of a client that has no
/// certificate says so.
async fn explain(error: StoreError, options: &EtcdOptions) -> StoreError {
    let Some(tls) = &options.tls else {
        return error;
    };
    let endpoints = options.endpoints.join(",");
    let mut error = error;
    // A refused client certificate surfaces as "unavailable" or, when the connection
    // breaks mid-request, as any status carrying the broken pipe: probe after either.
    if matches!(
        error,
        StoreError::Unreachable { .. } | StoreError::Rejected(_)
    ) && let Some(refusal) = diagnose::tls_refusal(&options.endpoints[0], tls).await
        && let Some(cause) = error::tls_problem(&refusal)
    {
        error = StoreError::Denied {
            endpoints: endpoints.clone(),
            cause,
        };
    }
    match error {
        StoreError::Denied { cause, .. }
            if tls.cert_file.is_none() && cause.contains("refused this client's certificate") =>
        {
            StoreError::Denied {
                endpoints,
                cause: "etcd requires a client certificate and this client has none; set \
                        [etcd.tls] cert_file and key_file"
                    .to_owned(),
            }
        }
        other => other,
    }
}

fn connect_options(options: &EtcdOptions) -> Result<ConnectOptions, StoreError> {
    // Requests get a deadline so a partitioned etcd turns into an error, not a hang; the
    // keep-alive pings notice a dead connection under an idle watch.
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_timeout(options.request_timeout)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
    if let Some((user, password)) = options.credentials()? {
        // A long-lived client (an agent, `serve`, `top`) outlives its token; refreshing on
        // "invalid auth token" keeps it working without reconnecting.
        connect = connect
            .with_user(user, password)
            .with_auto_token_refresh(true);
    }
    if let Some(tls) = &options.tls {
        connect = connect.with_tls(tls.to_client_config()?);
    }
    Ok(connect)
}
