//! `scimfleet plan`, `scimfleet sync` and `scimfleet dry-run`: seeing and
//! making changes to targets outside the event flow.

use std::path::PathBuf;

use clap::Args;
use scimfleet_admin::{plan, sync};

use crate::cli::ConfigArg;

/// `scimfleet plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The events to plan: JSON Lines, as `scimfleet publish` reads them.
    #[arg(long)]
    pub events: PathBuf,
    /// One JSON object per planned job instead of the text.
    #[arg(long)]
    pub json: bool,
}

/// `scimfleet sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The person's HR id.
    #[arg(long)]
    pub person: String,
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
}

/// `scimfleet dry-run`.
#[derive(Debug, Args)]
pub(crate) struct DryRunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The app.
    #[arg(long)]
    pub app: String,
    /// The newest this many records.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The records as stored, one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET_BROKER)?;
    plan::run(&config, &args.events, args.json, &mut std::io::stdout()).await?;
    Ok(())
}

pub(crate) async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET_BROKER)?;
    sync::run(&config, &args.person, args.app.as_deref(), &mut std::io::stdout()).await?;
    Ok(())
}

pub(crate) async fn dry_run(args: DryRunArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET)?;
    plan::dry_runs(&config, &args.app, args.limit, args.json, &mut std::io::stdout()).await?;
    Ok(())
}
