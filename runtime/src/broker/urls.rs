//! The broker's addresses: `broker.url` names one AMQP URL or a list of
//! them, one per node of a RabbitMQ cluster.
//!
//! A process connects to one node; queues are reachable through any node
//! of the cluster (<https://www.rabbitmq.com/docs/clustering>), so which one
//! it picks only matters for spreading connections. Each attempt starts at
//! a random node and tries the others in turn: processes spread over the
//! nodes, and a process whose node went away finds a surviving one on its
//! next reconnect (every role reconnects through `supervise` and
//! [`super::connect`]). A load balancer in front of the cluster is the
//! other way to do this; a list needs no extra component.

use serde::Deserialize;

use crate::Secret;

/// The AMQP URLs of `broker.url`: at least one (validated at start-up).
/// They may hold a password, so they never print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrls(Vec<Secret>);

impl BrokerUrls {
    /// One URL.
    pub fn one(url: Secret) -> Self {
        Self(vec![url])
    }

    /// The first URL: where the user, password and vhost shared by every
    /// node are read (the management API logs in with them).
    ///
    /// # Panics
    /// Never on a validated configuration, which names at least one URL.
    pub fn first(&self) -> &Secret {
        &self.0[0]
    }

    /// Every URL, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// How many URLs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none (refused at start-up).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every URL with its position, in the order of one connection
    /// attempt that starts at `start` (wrapped) and goes round the list.
    pub fn attempt_order(&self, start: usize) -> impl Iterator<Item = (usize, &Secret)> {
        rotation(self.0.len(), start).map(|i| (i, &self.0[i]))
    }
}

/// `0..len` rotated to begin at `start % len`: every index once.
fn rotation(len: usize, start: usize) -> impl Iterator<Item = usize> {
    let start = if len == 0 { 0 } else { start % len };
    (start..len).chain(0..start)
}

/// A string or a list of strings: `url = "amqp://…"` as before, or
/// `url = ["amqp://…", "amqp://…"]` for a cluster.
#[derive(Deserialize)]
#[serde(untagged, expecting = "an AMQP URL or a list of AMQP URLs")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for BrokerUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The error never holds the value: it may hold a password.
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(url) => Self::one(Secret::new(url)),
            OneOrMany::Many(urls) => Self(urls.into_iter().map(Secret::new).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> BrokerUrls {
        BrokerUrls((0..n).map(|i| Secret::new(format!("amqp://node{i}"))).collect())
    }

    fn order(urls: &BrokerUrls, start: usize) -> Vec<usize> {
        urls.attempt_order(start).map(|(i, _)| i).collect()
    }

    #[test]
    fn an_attempt_goes_round_every_node_once_from_its_start() {
        let three = urls(3);
        assert_eq!(order(&three, 0), [0, 1, 2]);
        assert_eq!(order(&three, 1), [1, 2, 0]);
        assert_eq!(order(&three, 2), [2, 0, 1]);
        assert_eq!(order(&three, 5), [2, 0, 1], "the start wraps");
        assert_eq!(order(&urls(1), 7), [0]);
        assert!(order(&urls(0), 3).is_empty());
    }

    #[test]
    fn the_order_pairs_each_position_with_its_url() {
        let three = urls(3);
        let visited: Vec<&str> = three.attempt_order(1).map(|(_, url)| url.expose()).collect();
        assert_eq!(visited, ["amqp://node1", "amqp://node2", "amqp://node0"]);
    }

    #[test]
    fn a_string_or_a_list_deserializes() {
        let one: BrokerUrls = toml::from_str::<toml::Table>("u = \"amqp://a\"")
            .expect("toml")
            .remove("u")
            .expect("u")
            .try_into()
            .expect("one url");
        assert_eq!(one.len(), 1);
        assert_eq!(one.first().expose(), "amqp://a");
        let many: BrokerUrls =
            toml::Value::Array(vec!["amqp://a".into(), "amqp://b".into()]).try_into().expect("a list");
        assert_eq!(many.iter().map(Secret::expose).collect::<Vec<_>>(), ["amqp://a", "amqp://b"]);
        let wrong = toml::Value::Integer(5).try_into::<BrokerUrls>().expect_err("a number");
        assert!(wrong.to_string().contains("an AMQP URL or a list of AMQP URLs"), "{wrong}");
    }

    #[test]
    fn urls_never_print() {
        assert!(!format!("{:?}", urls(2)).contains("amqp://"));
    }
}
