//! What approving and releasing share: the approver's code checked, and
//! released jobs published with confirms.

use chrono::Utc;
use lapin::types::{AMQPValue, FieldTable};
use scimfleet_runtime::broker::{self, Outgoing, Publisher, RECEIVED_AT_HEADER, Topology, persistent};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::Job;

use super::approvers::{Approver, Approvers};
use super::note::{Target, refused};
use crate::AdminError;

/// The approvers of `config`; an error when none are configured.
pub(crate) fn approvers_of(config: &Config) -> Result<Approvers, AdminError> {
    let path = config.governance.approvers_path(&config.base_dir).ok_or_else(|| {
        AdminError::Refused("no governance.approvers_file is configured: nothing can be approved".to_owned())
    })?;
    Approvers::load(&path).map_err(|e| AdminError::Refused(error_chain(&e)))
}

/// Checks `code` as `name`'s current TOTP code and spends it: a code (or an
/// older one) is accepted once, by every admin process together. A refusal
/// is audited against `target`.
pub(crate) async fn spend_code<'a>(
    (config, store): (&Config, &Store),
    approvers: &'a Approvers,
    (name, code): (&str, &str),
    target: Target<'_>,
) -> Result<&'a Approver, AdminError> {
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    match approvers.authenticate(store, name, code, now).await {
        Ok(approver) => Ok(approver),
        Err(error) => Err(refused(config, store, name, target, error_chain(&error)).await),
    }
}

/// Publishes `jobs` to the jobs exchange with confirms.
pub(crate) async fn publish(config: &Config, jobs: &[Job]) -> Result<(), AdminError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let connection = broker::connect(&config.broker, "scimfleet-approvals").await?;
    let published = publish_on(&connection, config, jobs).await;
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "approvals done".into())).await;
    published
}

async fn publish_on(connection: &lapin::Connection, config: &Config, jobs: &[Job]) -> Result<(), AdminError> {
    let publisher = Publisher::open(connection).await?;
    let exchange = Topology::of(config).jobs_exchange();
    let received_at = Utc::now().timestamp_millis();
    let encoded: Vec<(String, Vec<u8>, lapin::BasicProperties)> = jobs
        .iter()
        .map(|job| {
            let mut headers = FieldTable::default();
            headers.insert(RECEIVED_AT_HEADER.into(), AMQPValue::LongLongInt(received_at));
            let properties = persistent("application/json")
                .with_message_id(job.job_id.as_str().into())
                .with_type(job.action.name().into())
                .with_headers(headers);
            Ok((Topology::route(job), serde_json::to_vec(job)?, properties))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    let messages = encoded.iter().map(|(routing_key, body, properties)| Outgoing {
        exchange: &exchange,
        routing_key,
        body,
        properties: properties.clone(),
        mandatory: true,
    });
    publisher.publish_all(messages).await?;
    let _closed =
        scimfleet_runtime::broker::within("a close", publisher.channel().close(200, "approvals done".into()))
            .await;
    Ok(())
}
