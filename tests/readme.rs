//! The README names only commands and flags that `ionctl` has: every `ionctl …` line in its
//! code blocks, with the indented lines that continue it, is checked against the `--help` of
//! the subcommand it names.

use std::collections::BTreeMap;
use std::process::Command;

/// `ionctl <path> --help`, or `None` when `path` is not a command.
fn help(path: &[&str]) -> Option<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_ionctl"))
        .args(path)
        .arg("--help")
        .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
        .output()
        .expect("running ionctl --help");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The `ionctl` command lines of the README's code blocks, each with its continuation lines
/// and without comments.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            commands.extend(current.take());
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default();
        let trimmed = code.trim_start().trim_start_matches("$ ");
        if trimmed.starts_with("ionctl ") {
            commands.extend(current.take());
            current = Some(trimmed.to_owned());
        } else if let Some(command) = current.as_mut()
            && line.starts_with(' ')
            && !trimmed.is_empty()
        {
            command.push(' ');
            command.push_str(trimmed);
        } else {
            commands.extend(current.take());
        }
    }
    commands.extend(current);
    commands
}

#[test]
fn every_command_and_flag_the_readme_names_exists() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 15,
        "the README's ionctl lines were not found: {commands:?}"
    );
    let mut helps: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut missing = Vec::new();
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        // The longest run of plain words that is a command: `bench place`, `completions`.
        let mut path: Vec<&str> = Vec::new();
        for word in &words {
            let plain =
                word.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !word.starts_with('-');
            if !plain {
                break;
            }
            let mut longer = path.clone();
            longer.push(word);
            if help(&longer).is_none() {
                break;
            }
            path = longer;
        }
        if path.is_empty() {
            missing.push(format!("{command:?}: no such command"));
            continue;
        }
        let key: Vec<String> = path.iter().map(|w| (*w).to_owned()).collect();
        let text = helps
            .entry(key)
            .or_insert_with(|| help(&path).expect("checked above"));
        for flag in command
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            if !text.contains(&format!("{flag} ")) && !text.contains(&format!("{flag}\n")) {
                missing.push(format!(
                    "{command:?}: `ionctl {}` has no {flag}",
                    path.join(" ")
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
