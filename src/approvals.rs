//! `scimfleet approvals …`: the subcommands' arguments and their wiring.

use std::path::PathBuf;

use clap::Subcommand;
use scimfleet_admin::approvals;

use crate::cli::ConfigArg;

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// Held grants and mass-deprovision waves, awaiting a decision.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON document instead of the tables.
        #[arg(long)]
        json: bool,
    },
    /// Approve a held grant with your TOTP code; it is published once enough approvers have.
    Approve {
        #[command(flatten)]
        config: ConfigArg,
        /// The held job's id (or its first 8+ characters).
        id: String,
        /// Your name in the approvers file.
        #[arg(long)]
        approver: String,
        /// Your current TOTP code (6 digits).
        #[arg(long)]
        code: String,
    },
    /// Reject a held grant: it is never published.
    Reject {
        #[command(flatten)]
        config: ConfigArg,
        /// The held job's id (or its first 8+ characters).
        id: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// Who rejects it (default: $USER).
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
    },
    /// Publish every deprovision a mass-deprovision wave holds (with your TOTP code).
    ReleaseWave {
        #[command(flatten)]
        config: ConfigArg,
        /// The wave's id.
        wave: String,
        /// Your name in the approvers file.
        #[arg(long)]
        approver: String,
        /// Your current TOTP code (6 digits).
        #[arg(long)]
        code: String,
    },
    /// Cancel a wave: what it holds is never applied (with your TOTP code).
    CancelWave {
        #[command(flatten)]
        config: ConfigArg,
        /// The wave's id.
        wave: String,
        /// Your name in the approvers file.
        #[arg(long)]
        approver: String,
        /// Your current TOTP code (6 digits).
        #[arg(long)]
        code: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Add an approver to an approvers file and print the otpauth:// URI for
    /// their authenticator app (shown once; the file is mode 0600).
    Enroll {
        /// The approvers file (`governance.approvers_file`).
        #[arg(long)]
        file: PathBuf,
        /// The approver's name.
        name: String,
        /// The approver's own HR id, so they cannot approve grants to themselves.
        #[arg(long)]
        person_id: Option<String>,
    },
}

pub(crate) async fn run(command: ApprovalsCommand) -> anyhow::Result<()> {
    let out = &mut std::io::stdout();
    match command {
        ApprovalsCommand::List { config, json } => {
            let config = crate::load(&config, crate::QUIET)?;
            approvals::list(&config, json, out).await?;
        }
        ApprovalsCommand::Approve { config, id, approver, code } => {
            let config = crate::load(&config, crate::QUIET_BROKER)?;
            approvals::approve(&config, &id, &approver, &code, out).await?;
        }
        ApprovalsCommand::Reject { config, id, reason, operator } => {
            let config = crate::load(&config, crate::QUIET)?;
            approvals::reject(&config, &id, &operator, &reason, out).await?;
        }
        ApprovalsCommand::ReleaseWave { config, wave, approver, code } => {
            let config = crate::load(&config, crate::QUIET_BROKER)?;
            approvals::release_wave(&config, &wave, &approver, &code, out).await?;
        }
        ApprovalsCommand::CancelWave { config, wave, approver, code, reason } => {
            let config = crate::load(&config, crate::QUIET)?;
            approvals::cancel_wave(&config, &wave, &approver, &code, &reason, out).await?;
        }
        ApprovalsCommand::Enroll { file, name, person_id } => {
            let uri = approvals::approvers::enroll(&file, &name, person_id.as_deref())?;
            println!("approver `{name}` added to {}", file.display());
            println!("add this to their authenticator app (it holds the secret; do not store it elsewhere):");
            println!("{uri}");
        }
    }
    Ok(())
}
