//! The queues of `[[sources]]` served by the intake:
//!
//! ```text
//! intake ──(default exchange)──▶ {ns}.sources.{id} (quorum)   kept deliveries, one queue per source
//!        ──(default exchange)──▶ {ns}.sources.dlq  (quorum)   deliveries that can never be processed
//! ```
//!
//! One queue per source, so a source whose API is down (its deliveries wait
//! to be read back) never holds up another's.

use lapin::Channel;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

use super::BrokerError;
use super::topology::{Topology, declare_queue};

impl Topology {
    /// Where a source's kept deliveries wait to be processed.
    pub fn source_queue(&self, source: &str) -> String {
        format!("{}.sources.{source}", self.namespace())
    }

    /// Where source deliveries that can never be processed are kept.
    pub fn sources_dlq(&self) -> String {
        format!("{}.sources.dlq", self.namespace())
    }

    /// Declares the queues of `sources` when `declare`
    /// (`broker.declare_topology`); otherwise checks, configuring nothing,
    /// that they exist (`scimfleet topology declare` made them).
    pub async fn ensure_sources(
        &self,
        channel: &Channel,
        sources: &[&str],
        declare: bool,
    ) -> Result<(), BrokerError> {
        if declare {
            return self.declare_sources(channel, sources).await;
        }
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let queues = sources.iter().map(|s| self.source_queue(s)).chain([self.sources_dlq()]);
        for queue in queues {
            channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .map_err(|source| BrokerError::Missing { queue, source })?;
        }
        Ok(())
    }

    /// Declares the queues of `sources` and the sources' dead-letter queue.
    pub async fn declare_sources(&self, channel: &Channel, sources: &[&str]) -> Result<(), BrokerError> {
        declare_queue(channel, &self.sources_dlq(), self.quorum(None)).await?;
        for source in sources {
            declare_queue(channel, &self.source_queue(source), self.quorum(None)).await?;
        }
        Ok(())
    }

    /// Deletes the queues of `sources` (tests and demo clean-up).
    pub async fn delete_sources(&self, channel: &Channel, sources: &[&str]) -> Result<(), BrokerError> {
        let queues = sources.iter().map(|s| self.source_queue(s)).chain([self.sources_dlq()]);
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(BrokerError::channel(format!("delete queue {queue}")))?;
        }
        Ok(())
    }
}
