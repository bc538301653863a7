//! Reading a running fleet: waiting until it is scheduled, settled or
//! drained (through [`crate::wait`]), queue depths, and its dead letters.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use scimfleet_runtime::broker::{Topology, read_dead_letter};
use scimfleet_schemas::{AppId, DeadLetter};
use tokio::task::JoinHandle;

use super::{Fleet, FleetError};
use crate::wait;

/// Extra time between the polls of [`Fleet::wait_drained`].
const QUIET_SPACING: Duration = Duration::from_millis(80);

impl Fleet {
    /// Waits until the scheduler has settled every published event (its jobs
    /// are queued; workers may not have run them).
    pub async fn wait_scheduled(&self, within: Duration) -> Result<(), FleetError> {
        let settled = wait::until("the scheduler to settle", within, async || {
            self.scheduler().settled() >= self.published
        })
        .await;
        settled.map_err(|e| format!("{e}: {:?}", self.scheduler()).into())
    }

    /// Waits until the fleet is drained: every published event settled, every
    /// queue of the namespace empty (work, leaver and retry queues included)
    /// and no delivery in flight, twice in a row. Counters alone cannot say
    /// this: a delivery whose ack was lost with a broken connection is
    /// redelivered and counted again.
    pub async fn wait_settled(&self, within: Duration) -> Result<(), FleetError> {
        let channel = self.connection.create_channel().await?;
        let settled = wait::until_steady("the fleet to settle", within, 2, async || {
            if self.tasks.iter().any(JoinHandle::is_finished) {
                return Err(FleetError::from("a fleet process stopped unexpectedly; see the logs"));
            }
            let (s, w) = (self.scheduler(), self.worker());
            // Counters are necessary conditions (they may over-count, never under-count).
            let counted = s.settled() >= self.published && w.settled() >= s.jobs_published;
            let idle = counted && s.in_flight() == 0 && w.in_flight() == 0;
            Ok(idle && self.queued(&channel).await? == 0)
        })
        .await;
        let (s, w) = (self.scheduler(), self.worker());
        settled.map_err(|e| -> FleetError {
            format!("{e}: published {}, scheduler {s:?}, worker {w:?}", self.published).into()
        })?;
        let _closed = channel.close(200, "settled".into()).await;
        Ok(())
    }

    /// Like [`Fleet::wait_settled`], for a fleet whose workers run out of
    /// process (`scimfleet worker` children), so the fleet's worker counters
    /// say nothing: waits until every published event is settled, every
    /// queue of the namespace is empty and `done` (the caller's view of the
    /// apps, e.g. every account present) holds, three polls in a row. Empty
    /// queues alone do not mean drained: a worker may hold unacked jobs.
    pub async fn wait_drained(&self, within: Duration, done: impl Fn() -> bool) -> Result<(), FleetError> {
        let channel = self.connection.create_channel().await?;
        let drained = wait::until_steady("the fleet to drain", within, 3, async || {
            // Workers out of process report nothing here: spread the quiet
            // polls over about 300 ms, so a job between a get and its
            // publish is not mistaken for a drained queue.
            tokio::time::sleep(QUIET_SPACING).await;
            if self.tasks.iter().any(JoinHandle::is_finished) {
                return Err(FleetError::from("a fleet process stopped unexpectedly; see the logs"));
            }
            let s = self.scheduler();
            let scheduled = s.settled() >= self.published && s.in_flight() == 0;
            Ok(scheduled && self.queued(&channel).await? == 0 && done())
        })
        .await;
        if let Err(e) = drained {
            return Err(format!(
                "{e}: published {}, scheduler {:?}, queued {}, done {}",
                self.published,
                self.scheduler(),
                self.queued(&channel).await?,
                done()
            )
            .into());
        }
        let _closed = channel.close(200, "drained".into()).await;
        Ok(())
    }

    /// Messages ready in the namespace's work queues (not dead-letter queues).
    async fn queued(&self, channel: &lapin::Channel) -> Result<u64, FleetError> {
        let topology = Topology::of(&self.config);
        let mut queues = vec![topology.events_queue()];
        for app in &self.config.apps {
            let named = topology.queues(&app.id);
            queues.extend(named.lanes().map(str::to_owned));
            queues.extend(named.retries);
        }
        let depth = scimfleet_runtime::broker::inspect::total_depth(channel, &queues).await?;
        Ok(u64::from(depth.messages))
    }

    /// Takes every message from a dead-letter queue (`events` or an app id).
    pub async fn take_dead_letters(&self, which: &str) -> Result<Vec<(DeadLetter, Vec<u8>)>, FleetError> {
        let topology = Topology::of(&self.config);
        let queue = match which {
            "events" => topology.events_dlq(),
            app => topology.app_dlq(&AppId::parse(app)?),
        };
        let channel = self.connection.create_channel().await?;
        let mut taken = Vec::new();
        while let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await?
        {
            let delivery = message.delivery;
            taken.push((read_dead_letter(&delivery.properties)?, delivery.data.clone()));
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Ok(taken)
    }
}
