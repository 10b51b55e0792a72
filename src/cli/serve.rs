//! `ionctl serve`: the placer over HTTP (see [`crate::api`]) until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{CliError, Context};
use crate::api::{ApiState, install_metrics, router};
use crate::gateway::{ConnectionLimits, Limits};
use crate::placer::{Placer, PlacerOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (e.g. 0.0.0.0:8080; port 0 picks a free one).
    #[arg(long, env = "IONCTL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How long a reservation holds if nobody joins.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub reservation_ttl: Duration,
    /// Gateway client connections at most [default: [gateway] max_connections, 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Gateway client connections from one IP address at most [default: [gateway]
    /// max_connections_per_ip, 100].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Close a gateway client silent this long, pongs included [default: [gateway]
    /// client_timeout, 30s].
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub client_timeout: Option<Duration>,
    /// PEM certificate chain: serve HTTPS and wss:// with it (reloaded when the file
    /// changes).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "IONCTL_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "IONCTL_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
}

pub async fn run(context: &Context, args: ServeArgs) -> Result<(), CliError> {
    let secret = context.join_secret()?;
    if secret.is_none() {
        tracing::warn!(
            "no join secret: answers carry no token; set [auth] secret or IONCTL_JOIN_SECRET"
        );
    }
    let client_timeout = args
        .client_timeout
        .unwrap_or(context.gateway.client_timeout);
    if client_timeout < Duration::from_secs(1) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--client-timeout {} is too short for a client to answer a ping; use at least 1s",
            humantime::format_duration(client_timeout)
        )));
    }
    let store = context.store().await?;
    let options = PlacerOptions {
        policy: context.policy.clone(),
        reservation_ttl: args.reservation_ttl,
        mirror: true,
        ..PlacerOptions::default()
    };
    let placer = Placer::start(store, options).await?;
    let state = Arc::new(ApiState {
        placer,
        secret,
        token_ttl: context.auth.token_ttl,
        metrics: install_metrics(),
        load_rules: context.policy.load_rules(),
        gateway: crate::gateway::GatewayOptions {
            client_timeout,
            ..context.gateway.clone()
        },
        connections: ConnectionLimits::new(Limits {
            total: args
                .max_connections
                .unwrap_or(context.gateway.max_connections),
            per_ip: args
                .max_connections_per_ip
                .unwrap_or(context.gateway.max_connections_per_ip),
        }),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))
        .map_err(CliError::other)?;
    let local = listener.local_addr().map_err(CliError::other)?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) else {
        tracing::info!(%local, "serving");
        eprintln!("listening on http://{local}");
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .context("the HTTP server failed")
            .map_err(CliError::other);
    };
    let config = crate::tls::load_and_watch(cert, key)
        .await
        .map_err(|e| CliError::usage(e.context("--tls-cert, --tls-key")))?;
    tracing::info!(%local, "serving over TLS");
    eprintln!("listening on https://{local}");
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown().await;
        stopping.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let listener = listener.into_std().map_err(CliError::other)?;
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(app)
        .await
        .context("the HTTPS server failed")
        .map_err(CliError::other)
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
