//! Exit codes: one place defines them, the help text and README document them.

use std::process::ExitCode;

use crate::placer::PlaceError;
use crate::provider::lifecycle::LifecycleError;
use crate::store::StoreError;

/// What a failed command tells its caller through the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: any other failure.
    Failure = 1,
    /// 2: bad flags or arguments (clap's own code for usage errors).
    Usage = 2,
    /// 3: etcd could not be reached.
    EtcdUnreachable = 3,
    /// 4: no node has room for the session (see `ionctl place`).
    NoCapacity = 4,
    /// 5: a drain timed out with sessions left.
    DrainTimeout = 5,
    /// 6: a named node (or instance) does not exist.
    UnknownNode = 6,
    /// 7: the agent could not be reached or refused the join (`ionctl loadtest`).
    AgentUnreachable = 7,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure not covered below
  2  usage error: a bad flag, argument or config file
  3  etcd unreachable, or it refused ionctl's certificate, user or password
  4  no capacity: no node can take the session (or record it)
  5  drain timed out with sessions left
  6  unknown node or instance
  7  agent unreachable or join refused (loadtest)";

/// The error and its causes on one line, each cause once (see [`crate::text::error_line`]).
pub fn one_line(error: &anyhow::Error) -> String {
    crate::text::error_line(error.as_ref())
}

/// A command's failure: the error to print and the exit code to return.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub source: anyhow::Error,
}

impl CliError {
    pub fn new(exit: Exit, source: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            source: source.into(),
        }
    }

    pub fn other(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::Failure, source)
    }

    pub fn usage(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::Usage, source)
    }
}

impl CliError {
    /// etcd could not be reached: the cause, and where to point ionctl instead.
    fn unreachable(error: &dyn std::fmt::Display) -> Self {
        let hint = "is etcd running? Point ionctl at it with --etcd, IONCTL_ETCD_ENDPOINTS \
                    or [etcd] endpoints in ~/.config/ionctl/config.toml";
        Self::new(Exit::EtcdUnreachable, anyhow::anyhow!("{error}; {hint}"))
    }
}

impl CliError {
    /// etcd refused this client's credentials: the cause, and where they are set.
    fn denied(error: &dyn std::fmt::Display) -> Self {
        let hint = "ionctl's etcd credentials come from --etcd-ca, --etcd-cert, --etcd-key, \
                    --etcd-user and IONCTL_ETCD_PASSWORD, or [etcd] in \
                    ~/.config/ionctl/config.toml";
        Self::new(Exit::EtcdUnreachable, anyhow::anyhow!("{error}; {hint}"))
    }
}

impl From<LifecycleError> for CliError {
    /// etcd's failures keep their own exit codes (unreachable, unknown node), under the step
    /// that failed.
    fn from(error: LifecycleError) -> Self {
        let step = error.to_string();
        match error {
            LifecycleError::Record { source, .. } | LifecycleError::Drain { source, .. } => {
                let mut cli = CliError::from(source);
                cli.source = cli.source.context(step);
                cli
            }
            other => CliError::other(other),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        if error.is_unreachable() {
            Self::unreachable(&error)
        } else if error.is_access_denied() {
            Self::denied(&error)
        } else if matches!(error, StoreError::UnknownNode { .. }) {
            Self::new(Exit::UnknownNode, error)
        } else if matches!(
            error,
            StoreError::Key(_)
                | StoreError::CredentialsIncomplete(_)
                | StoreError::TlsIdentityIncomplete
        ) {
            Self::usage(error)
        } else {
            Self::other(error)
        }
    }
}

impl From<PlaceError> for CliError {
    fn from(error: PlaceError) -> Self {
        if error.is_unreachable() {
            Self::unreachable(&error)
        } else if matches!(&error, PlaceError::Store(e) if e.is_access_denied()) {
            Self::denied(&error)
        } else {
            Self::other(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("size {size}: {source}")]
    struct Quoting {
        size: u32,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        // An error that quotes its source, under a context: the source once, not twice.
        let quoting = Quoting {
            size: 9,
            source: std::io::Error::other("a group takes at most 6 participants"),
        };
        let error = anyhow::Error::new(quoting).context("cannot place");
        assert_eq!(
            one_line(&error),
            "cannot place: size 9: a group takes at most 6 participants"
        );
        // Causes that are not quoted are all printed, outermost first.
        let plain = anyhow::anyhow!("connection refused")
            .context("cannot reach etcd")
            .context("listing nodes");
        assert_eq!(
            one_line(&plain),
            "listing nodes: cannot reach etcd: connection refused"
        );
    }
}
