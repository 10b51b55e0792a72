//! clap's view of the library's enums, so the model, placement and the load-test library carry
//! no CLI derive: each flag's values with their help, and the conversion into the library's
//! own type.

use clap::ValueEnum;

use crate::loadtest::report::AgentCpuFrom;
use crate::loadtest::sfu::Sfu;
use crate::model::SessionClass;
use crate::placement::{Role, Strategy};

/// `--class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassArg {
    /// 2..6 participants, everyone sees everyone.
    Group,
    /// 2..50 participants, last-N video of 9.
    Meeting,
    /// 2..300 participants, up to 6 speakers.
    Conference,
    /// 1 publisher and n viewers, on dedicated nodes.
    Livestream,
    /// A recorder of n tracks, on a dedicated node.
    Recording,
}

impl From<ClassArg> for SessionClass {
    fn from(class: ClassArg) -> Self {
        match class {
            ClassArg::Group => SessionClass::Group,
            ClassArg::Meeting => SessionClass::Meeting,
            ClassArg::Conference => SessionClass::Conference,
            ClassArg::Livestream => SessionClass::Livestream,
            ClassArg::Recording => SessionClass::Recording,
        }
    }
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Fill used nodes first, the fullest after placement wins, so empty nodes can go.
    Binpack,
    /// The least utilised node after placement wins.
    Spread,
}

impl From<StrategyArg> for Strategy {
    fn from(strategy: StrategyArg) -> Self {
        match strategy {
            StrategyArg::Binpack => Strategy::Binpack,
            StrategyArg::Spread => Strategy::Spread,
        }
    }
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Publishes: joins the session's origin node.
    Publisher,
    /// Only watches: joins the edge of a spanning session with the most room.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// `ionctl loadtest --agent-cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentCpuArg {
    /// The first available of proc, metrics, etcd.
    Auto,
    Proc,
    Metrics,
    Etcd,
}

impl From<AgentCpuArg> for AgentCpuFrom {
    fn from(source: AgentCpuArg) -> Self {
        match source {
            AgentCpuArg::Auto => AgentCpuFrom::Auto,
            AgentCpuArg::Proc => AgentCpuFrom::Proc,
            AgentCpuArg::Metrics => AgentCpuFrom::Metrics,
            AgentCpuArg::Etcd => AgentCpuFrom::Etcd,
        }
    }
}

/// `ionctl loadtest --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// An ion-agent (or ion-sfu): JSON-RPC signaling.
    Ion,
    /// Janus's videoroom plugin over its WebSocket API (ws://HOST:8188), for a side-by-side
    /// measurement.
    Janus,
}

impl From<TargetArg> for Sfu {
    fn from(target: TargetArg) -> Self {
        match target {
            TargetArg::Ion => Sfu::Ion,
            TargetArg::Janus => Sfu::Janus,
        }
    }
}
