//! `scimfleet import`: people from an HR file source (`[[sources]]`), and
//! `scimfleet sources renew`: the subscriptions and channels of the
//! identity-provider sources the intake serves.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use scimfleet_admin::import;

use tokio_util::sync::CancellationToken;

use crate::cli::ConfigArg;

/// `scimfleet import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The `[[sources]]` entry (kind `hr-file`) that says how the file is laid out.
    #[arg(long)]
    pub source: String,
    /// Report what would be emitted; publish nothing.
    #[arg(long)]
    pub check: bool,
    /// Release an import held by the mass-deprovision limits as this approver.
    #[arg(long, requires = "code")]
    pub approver: Option<String>,
    /// The approver's current TOTP code.
    #[arg(long, requires = "approver")]
    pub code: Option<String>,
    /// Watch this drop folder instead: import each file dropped there, then
    /// move it to `imported/`, `held/` or `failed/` (until stopped).
    #[arg(long, conflicts_with_all = ["file", "check", "approver"])]
    pub watch: Option<PathBuf>,
    /// How often the drop folder is looked at.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub every: Duration,
    /// The HR extract.
    #[arg(required_unless_present = "watch")]
    pub file: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let ms = scimfleet_runtime::config::parse_duration_ms(text);
    ms.filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is not a duration like 10s"))
}

pub(crate) async fn import(args: ImportArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET_BROKER)?;
    if let Some(dir) = &args.watch {
        import::watch(&config, &args.source, dir, args.every, stop, &mut std::io::stdout()).await?;
        return Ok(());
    }
    let Some(file) = &args.file else { anyhow::bail!("give the extract, or --watch a drop folder") };
    let approval = args
        .approver
        .as_deref()
        .zip(args.code.as_deref())
        .map(|(approver, code)| import::Approval { approver, code });
    import::run(&config, &args.source, file, args.check, approval, &mut std::io::stdout()).await?;
    Ok(())
}

/// `scimfleet sources`.
#[derive(Debug, Subcommand)]
pub(crate) enum SourcesCommand {
    /// Create or renew the Graph subscriptions and Google channels of the
    /// `[[sources]]` that keep them (the intake also does it on schedule).
    Renew {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
}

pub(crate) async fn sources(command: SourcesCommand) -> anyhow::Result<()> {
    let SourcesCommand::Renew { config, source } = command;
    let config = crate::load(&config, crate::QUIET_BROKER)?;
    let lines = scimfleet_intake::sources::renew_all(config, source.as_deref()).await?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
