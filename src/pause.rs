//! `scimfleet pause` and `scimfleet resume`: hold one app's jobs in their
//! queues fleet-wide, and let them flow again.

use clap::Args;
use scimfleet_admin::pause::{self, Request};

use crate::cli::{ConfigArg, OperatorArg};

#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The app whose jobs wait in their queues until `scimfleet resume`.
    #[arg(long)]
    app: String,
    /// Why, shown by `scimfleet status` and kept in the audit trail (no personal data).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    operator: OperatorArg,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The paused app.
    #[arg(long)]
    app: String,
    #[command(flatten)]
    operator: OperatorArg,
}

pub(crate) async fn pause(args: PauseArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET)?;
    let request = Request { app: &args.app, operator: &args.operator.operator, reason: &args.reason };
    pause::pause(&config, request, &mut std::io::stdout()).await?;
    Ok(())
}

pub(crate) async fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET)?;
    let request = Request { app: &args.app, operator: &args.operator.operator, reason: "" };
    pause::resume(&config, request, &mut std::io::stdout()).await?;
    Ok(())
}
