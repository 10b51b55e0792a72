//! `ionctl top`: the live dashboard ([`crate::tui`]). This file only checks that there is a
//! terminal to draw on and hands over the resolved etcd settings.

use std::io::IsTerminal;

use anyhow::{Context as _, anyhow};
use clap::Args;

use super::{CliError, Context};
use crate::tui;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The reason recorded with drains requested from the dashboard (`d`).
    #[arg(long, value_name = "TEXT", default_value = "ionctl top")]
    pub drain_reason: String,
}

pub async fn run(context: &Context, args: TopArgs) -> Result<(), CliError> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CliError::usage(anyhow!(
            "ionctl top needs a terminal; for scripts use `ionctl nodes -o json`"
        )));
    }
    // A test hook, not a feature: the key named here panics, so the end-to-end test can
    // prove the terminal is restored after a crash. Release builds do not read it.
    let panic_key = if cfg!(debug_assertions) {
        std::env::var("IONCTL_TOP_PANIC_KEY")
            .ok()
            .and_then(|k| k.chars().next())
    } else {
        None
    };
    tui::run(tui::Options {
        etcd: context.etcd.clone(),
        drain_reason: args.drain_reason,
        panic_key,
        load_rules: context.policy.load_rules(),
    })
    .await
    .context("the dashboard failed")
    .map_err(CliError::other)
}
