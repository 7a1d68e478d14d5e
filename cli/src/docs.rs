//! `berth completions` and `berth man`: shell completion scripts (clap_complete) and
//! manual pages (clap_mangen), both generated from the command line's own definition.

use crate::error::Error;
use clap::CommandFactory;
use std::path::Path;

/// The shells `berth completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash (source it, or put it in /etc/bash_completion.d/berth).
    Bash,
    /// zsh (put it as `_berth` in a directory of $fpath).
    Zsh,
    /// fish (put it in ~/.config/fish/completions/berth.fish).
    Fish,
}

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: Shell) -> Result<(), Error> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::Cli::command(), "berth", &mut script);
    crate::output::emit(&String::from_utf8_lossy(&script))
}

/// Prints the top-level manual page to stdout, or writes every command's page to `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), Error> {
    let command = crate::Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            clap_mangen::generate_to(command, dir)
                .map_err(|e| Error::io(format!("writing manual pages to {}", dir.display()), e))?;
            crate::output::note(format!("wrote manual pages to {}", dir.display()));
            Ok(())
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Error::io("rendering the manual page", e))?;
            crate::output::emit(&String::from_utf8_lossy(&page))
        }
    }
}
