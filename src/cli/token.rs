//! `ionctl token issue`: a client token for the gateway (`ionctl serve`'s `GET /ws`), as an
//! operator's back end issues one with `ion_cluster::token::issue_client`; for scripts and
//! tests.

use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::{Args, Subcommand};

use super::output::write_stdout;
use super::values::{ClassArg, RoleArg};
use super::{CliError, Context};
use crate::model::keys::validate_id;
use crate::token::{ClientGrant, issue_client};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a client token for joining SESSION through the gateway.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The session the token admits.
    #[arg(long = "session", value_name = "S")]
    pub session: String,
    /// The class to place the session with when it is new [default: [gateway] default_class].
    #[arg(long, value_enum)]
    pub class: Option<ClassArg>,
    /// Its size [default: [gateway] default_size].
    #[arg(long)]
    pub size: Option<u32>,
    /// Publisher or viewer: which node of a session that spans nodes [default: publisher,
    /// or the gateway URL's `role` parameter].
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// How long the token admits joins.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub ttl: Duration,
}

pub fn run(context: &Context, args: TokenArgs) -> Result<(), CliError> {
    let TokenCommand::Issue(args) = args.command;
    validate_id("session", &args.session).map_err(CliError::usage)?;
    let secret = context.join_secret()?.ok_or_else(|| {
        CliError::usage(anyhow!(
            "no cluster secret to sign with: set [auth] secret or {}",
            super::context::JOIN_SECRET_ENV
        ))
    })?;
    let grant = ClientGrant {
        sid: args.session,
        class: args.class.map(Into::into),
        size: args.size,
        role: args.role.map(Into::into),
    };
    let token = issue_client(&secret, &grant, SystemTime::now(), args.ttl);
    write_stdout(format!("{token}\n").as_bytes())
}
