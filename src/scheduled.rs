//! `scimfleet scheduled …`: events waiting for their effective date.

use clap::Subcommand;
use scimfleet_admin::scheduled;

use crate::cli::ConfigArg;

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduledCommand {
    /// Events kept until their `effective_at`, soonest first (people by pseudonym).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only the events of the person with this HR id.
        #[arg(long)]
        person: Option<String>,
        /// Print one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: ScheduledCommand) -> anyhow::Result<()> {
    let out = &mut std::io::stdout();
    match command {
        ScheduledCommand::List { config, person, json } => {
            let config = crate::load(&config, crate::QUIET)?;
            scheduled::list(&config, person.as_deref(), json, out).await?;
        }
    }
    Ok(())
}
