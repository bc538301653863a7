//! `scimfleet status`: per app, queue depths, consumers, retry backlog,
//! dead letters, breakers, last error and verification failures, as a
//! table or one JSON document (see `scimfleet_runtime::status`).

use clap::Args;
use scimfleet_runtime::{status, telemetry};

use crate::ConfigArg;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this app; every configured app by default.
    #[arg(long)]
    app: Option<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    telemetry::init_logging(config.telemetry.log_format, "warn,lapin=error");
    let report = status::gather(&config, args.app.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", status::render_table(&report));
    }
    Ok(())
}
