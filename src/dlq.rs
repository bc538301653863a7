//! `scimfleet dlq list|show|replay|purge`: the dead-letter queues of the
//! apps, the events and the sources.

use clap::{Args, Subcommand};
use scimfleet_admin as admin;

use crate::cli::{ConfigArg, OperatorArg};
use crate::{QUIET_BROKER, load};

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Count dead letters per queue, or list one queue's messages.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// List this queue's messages (an app id, or `events`); all counts otherwise.
        #[arg(long)]
        app: Option<String>,
        /// Most messages to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print one dead letter: its envelope and original body.
    Show {
        #[command(flatten)]
        target: DlqTarget,
        /// Job id or event id.
        #[arg(long)]
        id: String,
    },
    /// Republish dead letters (jobs keep their id and get a fresh retry budget).
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        select: DlqSelect,
        #[command(flatten)]
        operator: OperatorArg,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        select: DlqSelect,
        #[command(flatten)]
        operator: OperatorArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DlqTarget {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// An app id, `events` for the events dead-letter queue, or `sources`
    /// for deliveries of `[[sources]]` that could not be processed.
    #[arg(long)]
    pub(crate) app: String,
    /// Most messages to read from the queue in one run.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) limit: usize,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct DlqSelect {
    /// Job ids or event ids (repeatable).
    #[arg(long = "id")]
    pub(crate) ids: Vec<String>,
    /// Every message in the queue.
    #[arg(long)]
    pub(crate) all: bool,
}

pub(crate) async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    let out = &mut std::io::stdout();
    match command {
        DlqCommand::List { config, app, limit } => {
            let config = load(&config, QUIET_BROKER)?;
            admin::dlq::list(&config, app.as_deref(), limit, out).await?;
        }
        DlqCommand::Show { target, id } => {
            let config = load(&target.config, QUIET_BROKER)?;
            admin::dlq::show(&config, &target.app, &id, target.limit, out).await?;
        }
        DlqCommand::Replay { target, select, operator } => {
            let config = load(&target.config, QUIET_BROKER)?;
            let selection = selection(select);
            let (app, limit, operator) = (&target.app, target.limit, &operator.operator);
            let batch = admin::dlq::Batch { app, selection: &selection, limit, operator };
            admin::dlq::replay(&config, batch, out).await?;
        }
        DlqCommand::Purge { target, select, operator } => {
            let config = load(&target.config, QUIET_BROKER)?;
            let selection = selection(select);
            let (app, limit, operator) = (&target.app, target.limit, &operator.operator);
            let batch = admin::dlq::Batch { app, selection: &selection, limit, operator };
            admin::dlq::purge(&config, batch, out).await?;
        }
    }
    Ok(())
}

fn selection(select: DlqSelect) -> admin::dlq::Selection {
    if select.all { admin::dlq::Selection::All } else { admin::dlq::Selection::Ids(select.ids) }
}
