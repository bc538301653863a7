//! Publishing HR events into a fleet, with confirms, as the HR side would;
//! the count published is what the waits compare the scheduler against.

use chrono::Utc;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, dead_letter_headers, persistent};
use scimfleet_schemas::{AppId, DeadLetter, DeadLetterReason, Stage};

use super::{Fleet, FleetError};

impl Fleet {
    /// Publishes raw event bodies to `{ns}.events` with confirms, routing key
    /// = the event's `type` when readable. Counts them for [`Fleet::wait_settled`].
    pub async fn publish(&mut self, bodies: &[Vec<u8>]) -> Result<(), FleetError> {
        self.publish_as(bodies, Some(broker::events::CLOUDEVENTS_JSON)).await
    }

    /// Like [`Fleet::publish`], with a chosen content type (or none).
    pub async fn publish_as(
        &mut self,
        bodies: &[Vec<u8>],
        content_type: Option<&str>,
    ) -> Result<(), FleetError> {
        let properties = match content_type {
            Some(content_type) => persistent(content_type),
            // Persistent, but with no content type at all.
            None => lapin::BasicProperties::default().with_delivery_mode(2),
        };
        let exchange = Topology::of(&self.config).events_exchange();
        let keys: Vec<String> = bodies.iter().map(|b| broker::events::routing_of(b).0).collect();
        let messages: Vec<Outgoing<'_>> = bodies
            .iter()
            .zip(&keys)
            .map(|(body, key)| Outgoing {
                exchange: &exchange,
                routing_key: key,
                body,
                properties: properties.clone(),
                mandatory: true,
            })
            .collect();
        self.publisher.publish_all(messages).await?;
        self.published += bodies.len() as u64;
        Ok(())
    }

    /// Publishes JSON events.
    pub async fn publish_json(&mut self, events: &[serde_json::Value]) -> Result<(), FleetError> {
        let bodies: Vec<Vec<u8>> = events.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
        self.publish(&bodies).await
    }

    /// Opens the harness's own broker connection afresh. A broker restart
    /// breaks it (the scheduler and worker reconnect by themselves), and
    /// [`Fleet::wait_settled`], [`Fleet::take_dead_letters`] and
    /// [`Fleet::stop`] need it.
    pub async fn reconnect(&mut self) -> Result<(), FleetError> {
        let connection = broker::connect(&self.config.broker, "scimfleet-fleet").await?;
        self.publisher = Publisher::open(&connection).await?;
        self.connection = connection;
        Ok(())
    }

    /// Puts dead letters `numbers` of `app` in its dead-letter queue, with
    /// confirms, as the worker leaves a job whose retries ran out (envelope
    /// headers and all: event id `dead-{n:06}`, reason `retries_exhausted`,
    /// last status 503), 500 to a batch of confirms. Nothing is counted for
    /// the waits: no worker will see them.
    pub async fn dead_letter(&self, app: &str, numbers: std::ops::Range<usize>) -> Result<(), FleetError> {
        let exchange = Topology::of(&self.config).jobs_dlx();
        let app_id = AppId::parse(app)?;
        let now = Utc::now();
        let envelope = |n: usize| DeadLetter {
            reason: DeadLetterReason::RetriesExhausted,
            detail: "POST /Users: 503 Service Unavailable".to_owned(),
            stage: Stage::Worker,
            app: Some(app_id.clone()),
            job_id: None,
            event_id: Some(format!("dead-{n:06}")),
            last_status: Some(503),
            attempts: 8,
            first_attempt_at: now,
            last_attempt_at: now,
        };
        let numbers: Vec<usize> = numbers.collect();
        for batch in numbers.chunks(500) {
            let messages: Vec<(Vec<u8>, lapin::BasicProperties)> = batch
                .iter()
                .map(|&n| {
                    let body = serde_json::json!({ "job": n, "app": app }).to_string().into_bytes();
                    (body, dead_letter_headers(&persistent("application/json"), &envelope(n)))
                })
                .collect();
            let outgoing = messages.iter().map(|(body, properties)| Outgoing {
                exchange: &exchange,
                routing_key: app,
                body,
                properties: properties.clone(),
                mandatory: true,
            });
            self.publisher.publish_all(outgoing).await?;
        }
        Ok(())
    }
}
