//! `ionctl completions`: shell completion scripts generated from the clap definition. The
//! repository keeps them in `completions/`, and a test fails when they are stale.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;

use super::CliError;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
    /// Directory to write the script into.
    #[arg(long, default_value = "completions")]
    pub dir: PathBuf,
    /// Print the script on stdout instead of writing a file.
    #[arg(long, conflicts_with = "dir")]
    pub stdout: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

pub fn run(args: CompletionsArgs) -> Result<(), CliError> {
    let shell = Shell::from(args.shell);
    let mut command = super::command();
    if args.stdout {
        clap_complete::generate(shell, &mut command, "ionctl", &mut std::io::stdout());
        return Ok(());
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))
        .map_err(CliError::other)?;
    let path = clap_complete::generate_to(shell, &mut command, "ionctl", &args.dir)
        .with_context(|| format!("cannot write completions into {}", args.dir.display()))
        .map_err(CliError::other)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
