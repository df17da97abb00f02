//! `kubeha completions SHELL`: the shell's completion script for every command and flag.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `kubeha completions bash > /etc/bash_completion.d/kubeha`
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> u8 {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "kubeha", &mut std::io::stdout());
    0
}
