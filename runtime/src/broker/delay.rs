//! Delay queues: where retried jobs and scheduled re-checks wait.
//!
//! ```text
//! worker ──headers app,tier──▶ {ns}.jobs.retry   (headers) ──▶ {ns}.jobs.{app}.retry.{ms}   (quorum, TTL ms)
//!        ──headers app,delay─▶ {ns}.jobs.recheck (headers) ──▶ {ns}.jobs.{app}.recheck.{ms} (quorum, TTL ms)
//!                                     on expiry, DLX at-least-once, the message's own routing key
//!                                                   ▼
//!                                              {ns}.jobs (topic) ──▶ the app's work queue or leaver lane
//! ```
//!
//! A job is published to a headers exchange with the headers
//! `scimfleet-retry-app` / `scimfleet-retry-tier`, which route it to the
//! queue of that app and delay. When the queue's message TTL expires the
//! broker dead-letters it back to `{ns}.jobs` with its own routing key, so it
//! returns to whatever queue serves that key then. The wait is on disk in
//! RabbitMQ, not in a worker's memory, and survives restarts. One queue per
//! delay keeps every message in a queue with the same TTL, so expiry is
//! first-in first-out and no message waits behind a longer one.
//!
//! Delay queues are quorum queues like every other queue, because a job
//! waiting in one is work in flight: with a classic queue the node holding
//! it is a single point of loss, and a node stopped for maintenance would
//! strand every job waiting there. Quorum queues take a message TTL from
//! RabbitMQ 3.10 (<https://www.rabbitmq.com/docs/ttl#per-queue-message-ttl>)
//! and dead-letter at least once
//! (<https://www.rabbitmq.com/docs/quorum-queues#dead-lettering>): an expired
//! message leaves the delay queue only once the queue it was routed to
//! confirmed it, so a node lost between expiry and re-publish loses nothing.
//! The price is one Raft group per app and delay (with five retry tiers and
//! two re-checks, seven per app): idle groups cost little more than memory
//! and a few timers, the messages in them are few and short-lived, and
//! losing a retry or a pending proof of deprovision would break the
//! guarantee that nothing is lost, which a cheaper queue cannot be allowed to.

use lapin::types::{AMQPValue, FieldTable};

use super::topology::{Topology, text};

impl Topology {
    /// The arguments of a delay queue holding messages for `delay_ms`:
    /// the one definition declaring and deployment files share.
    pub fn delay_queue_arguments(&self, delay_ms: u64) -> FieldTable {
        let mut arguments = FieldTable::default();
        // Replicated like every queue: see the module documentation.
        arguments.insert("x-queue-type".into(), text("quorum"));
        // https://www.rabbitmq.com/docs/ttl#per-queue-message-ttl: every
        // message waits `delay_ms`, then expires at the head of the queue.
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis(delay_ms)));
        // On expiry, back to the jobs exchange with the message's own routing
        // key (no x-dead-letter-routing-key), so it reaches the lane that
        // serves it now (https://www.rabbitmq.com/docs/dlx#routing).
        arguments.insert("x-dead-letter-exchange".into(), text(&self.jobs_exchange()));
        // The expired message stays in the delay queue until the target
        // queue confirmed it: a node lost between expiry and re-publish
        // loses nothing. It requires reject-publish overflow
        // (https://www.rabbitmq.com/docs/quorum-queues#dead-lettering);
        // there is no length limit, so nothing is ever refused for it.
        arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        arguments.insert("x-overflow".into(), text("reject-publish"));
        // No x-delivery-limit: nobody consumes a delay queue.
        if let Some(ms) = self.queue_expires_ms() {
            // https://www.rabbitmq.com/docs/ttl#queue-ttl: throw-away
            // namespaces only (tests, demo).
            arguments.insert("x-expires".into(), AMQPValue::LongLongInt(millis(ms)));
        }
        arguments
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(expires: Option<u64>) -> Topology {
        let text = "namespace = \"t1\"\n[[apps]]\nid = \"git\"\nbase_url = \"https://scim.example.com\"\n\
                    token_env = \"GIT_TOKEN\"\n[apps.scope]\ninclude = { department = [\"Ops\"] }\n";
        let mut config = crate::Config::from_toml(text, "test.toml", ".".into(), []).expect("config");
        config.broker.queue_expires_ms = expires;
        Topology::of(&config)
    }

    fn get<'a>(arguments: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
        arguments.inner().get(key)
    }

    #[test]
    fn a_delay_queue_is_a_quorum_queue_dead_lettering_at_least_once_to_the_jobs_exchange() {
        let arguments = topology(None).delay_queue_arguments(5000);
        assert_eq!(get(&arguments, "x-queue-type"), Some(&text("quorum")));
        assert_eq!(get(&arguments, "x-message-ttl"), Some(&AMQPValue::LongLongInt(5000)));
        assert_eq!(get(&arguments, "x-dead-letter-exchange"), Some(&text("t1.jobs")));
        assert_eq!(get(&arguments, "x-dead-letter-strategy"), Some(&text("at-least-once")));
        assert_eq!(get(&arguments, "x-overflow"), Some(&text("reject-publish")));
        assert_eq!(get(&arguments, "x-dead-letter-routing-key"), None, "the message's own key");
        assert_eq!(get(&arguments, "x-delivery-limit"), None, "nobody consumes it");
        assert_eq!(get(&arguments, "x-expires"), None);
    }

    #[test]
    fn a_throw_away_namespace_lets_its_delay_queues_expire() {
        let arguments = topology(Some(60_000)).delay_queue_arguments(1000);
        assert_eq!(get(&arguments, "x-expires"), Some(&AMQPValue::LongLongInt(60_000)));
    }
}
