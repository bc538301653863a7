//! `scimfleet import`: people from an HR file source (`[[sources]]`).

use std::path::PathBuf;

use clap::Args;
use scimfleet_admin::import;

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
    /// The HR extract.
    pub file: PathBuf,
}

pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = crate::load(&args.config, crate::QUIET_BROKER)?;
    let approval = args
        .approver
        .as_deref()
        .zip(args.code.as_deref())
        .map(|(approver, code)| import::Approval { approver, code });
    import::run(&config, &args.source, &args.file, args.check, approval, &mut std::io::stdout()).await?;
    Ok(())
}
