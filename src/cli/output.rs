//! Output of read commands: `-o table|json`, written so that a closed pipe (`| head`) is a
//! normal end, not a panic.

use std::io::Write;

use clap::{Args, ValueEnum};
use comfy_table::{Table, presets};
use serde::Serialize;

use super::CliError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Stable JSON on stdout for scripts.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// A table in the style of `kubectl get`: upper-case headers, no borders.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    table
}

pub fn print_table(table: &mut Table) -> Result<(), CliError> {
    // Flush left with two blanks between columns, and no trailing blanks for `diff`.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut text = table.trim_fmt();
    text.push('\n');
    write_stdout(text.as_bytes())
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(CliError::other)?;
    text.push(b'\n');
    write_stdout(&text)
}

/// Writes to stdout; a closed pipe is success.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::other),
    }
}

pub use crate::text::short_age;
