//! Queue figures for the status report: the RabbitMQ management API first,
//! AMQP passive declares when it cannot be reached.
//!
//! The management API is asked once per page of 500 queues, filtered on the
//! broker to the namespace's queues (`name` regex `^{ns}\.`) and trimmed to
//! the columns used, so the cost does not grow with other namespaces or
//! with per-queue detail (<https://www.rabbitmq.com/docs/http-api-reference>,
//! `GET /api/queues/{vhost}` with `page`, `page_size`, `name`, `use_regex`,
//! `columns`). It logs in with the user and password of `broker.url` (of
//! its first URL, when it names a cluster's nodes: they share them): the
//! same identity the processes use, so nothing else needs configuring; the
//! vhost is the one of `broker.url`, as the AMQP client parses it.
//!
//! A passive `queue.declare` answers a queue's ready count and consumers
//! but nothing about unacked messages; a queue that does not exist closes
//! the channel (404), so the next one is asked on a fresh channel.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use lapin::uri::AMQPUri;
use serde::{Deserialize, Serialize};

use scimfleet_runtime::Config;
use scimfleet_runtime::broker::{self, BrokerError};
use scimfleet_runtime::telemetry::error_chain;

use super::{Figures, Lane, Source};

/// Queues per management API page (the API's largest page).
const PAGE_SIZE: u32 = 500;
/// Longest wait for the management API before falling back to AMQP.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a queue holds and who consumes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueFigures {
    /// Messages ready for delivery.
    pub ready: u64,
    /// Messages delivered, not yet settled; `None` when unknown (AMQP).
    pub unacked: Option<u64>,
    /// Consumers attached.
    pub consumers: u64,
}

impl QueueFigures {
    /// The figures as a consumed lane.
    pub fn lane(self) -> Lane {
        Lane { ready: self.ready, unacked: self.unacked, consumers: self.consumers }
    }

    /// Every message in the queue (ready only, when unacked is unknown).
    pub fn messages(self) -> u64 {
        self.ready + self.unacked.unwrap_or(0)
    }
}

/// Why the management API gave no figures. Never holds the password (the
/// management URL holds no credentials, and request errors drop the URL).
#[derive(Debug, thiserror::Error)]
enum ManagementError {
    #[error("broker.url cannot be parsed")]
    BrokerUrl,
    #[error("broker.management_url cannot take a path")]
    BaseUrl,
    #[error("the TLS files of [broker] cannot be used")]
    Tls(#[source] scimfleet_runtime::tls::TlsError),
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("it answered HTTP {0}")]
    Status(u16),
}

/// One queue in a management API page; figures are absent until the
/// broker first sampled a new queue, and count as 0 then.
#[derive(Debug, Deserialize)]
struct Item {
    name: String,
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
    #[serde(default)]
    consumers: u64,
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<Item>,
    page_count: u32,
}

/// Figures of the queues in `names`: from the management API, else AMQP.
pub(super) async fn read(config: &Config, names: &[String]) -> Result<Figures, BrokerError> {
    match management(config).await {
        Ok(queues) => Ok(Figures { queues, source: Source::Management, note: None }),
        Err(error) => {
            let note = format!(
                "the RabbitMQ management API is unavailable ({}): figures from AMQP, unacked unknown",
                error_chain(&error)
            );
            let queues = amqp(config, names).await?;
            Ok(Figures { queues, source: Source::Amqp, note: Some(note) })
        }
    }
}

/// Every queue of the namespace, as the management API reports it.
async fn management(config: &Config) -> Result<HashMap<String, QueueFigures>, ManagementError> {
    let uri =
        AMQPUri::from_str(config.broker.url.first().expose()).map_err(|_| ManagementError::BrokerUrl)?;
    let user = &uri.authority.userinfo;
    // The management API is the broker's: it trusts the same CA bundle.
    let tls = config.broker.tls_files().load().map_err(ManagementError::Tls)?;
    let client = tls
        .apply_to(reqwest::Client::builder().timeout(HTTP_TIMEOUT).connect_timeout(CONNECT_TIMEOUT))
        .and_then(reqwest::ClientBuilder::build)
        .map_err(ManagementError::Request)?;
    let mut queues = HashMap::new();
    let mut page = 1;
    loop {
        let url = page_url(&config.broker.management_url, &uri.vhost, &config.namespace, page)?;
        let response = client
            .get(url)
            .basic_auth(&user.username, Some(&user.password))
            .send()
            .await
            .map_err(|e| ManagementError::Request(e.without_url()))?;
        if !response.status().is_success() {
            return Err(ManagementError::Status(response.status().as_u16()));
        }
        let body: Page = response.json().await.map_err(|e| ManagementError::Request(e.without_url()))?;
        for item in body.items {
            let figures = QueueFigures {
                ready: item.messages_ready,
                unacked: Some(item.messages_unacknowledged),
                consumers: item.consumers,
            };
            queues.insert(item.name, figures);
        }
        if page >= body.page_count {
            return Ok(queues);
        }
        page += 1;
    }
}

/// `{base}/api/queues/{vhost}?page=…` for the namespace's queues.
fn page_url(base: &url::Url, vhost: &str, namespace: &str, page: u32) -> Result<url::Url, ManagementError> {
    let mut url = base.clone();
    // `push` percent-encodes each segment: the default vhost `/` becomes `%2F`.
    url.path_segments_mut()
        .map_err(|()| ManagementError::BaseUrl)?
        .pop_if_empty()
        .extend(["api", "queues", vhost]);
    url.query_pairs_mut()
        .append_pair("page", &page.to_string())
        .append_pair("page_size", &PAGE_SIZE.to_string())
        .append_pair("name", &format!("^{}\\.", regex_escape(namespace)))
        .append_pair("use_regex", "true")
        .append_pair("columns", "name,messages_ready,messages_unacknowledged,consumers");
    Ok(url)
}

/// `text` as a literal in a PCRE pattern (the broker's regex flavour).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Ready counts and consumers of `names` by passive declares.
async fn amqp(config: &Config, names: &[String]) -> Result<HashMap<String, QueueFigures>, BrokerError> {
    let connection = broker::connect(&config.broker, "scimfleet-status").await?;
    let result = declare_passively(&connection, names).await;
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "status read".into())).await;
    result
}

async fn declare_passively(
    connection: &lapin::Connection,
    names: &[String],
) -> Result<HashMap<String, QueueFigures>, BrokerError> {
    let open = || async { connection.create_channel().await.map_err(BrokerError::channel("open channel")) };
    let mut channel = open().await?;
    let mut found = HashMap::new();
    for name in names {
        match broker::inspect::depth(&channel, name).await {
            Ok(depth) => {
                let figures = QueueFigures {
                    ready: u64::from(depth.messages),
                    unacked: None,
                    consumers: u64::from(depth.consumers),
                };
                found.insert(name.clone(), figures);
            }
            // Not found: the broker closed the channel. If the connection is
            // gone instead, opening the next channel fails and says so.
            Err(_) => channel = open().await?,
        }
    }
    let _closed =
        scimfleet_runtime::broker::within("a close", channel.close(200, "status read".into())).await;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_vhost_is_encoded_and_the_namespace_filtered() {
        let base = url::Url::parse("http://127.0.0.1:15672").expect("url");
        let url = page_url(&base, "/", "acme-prod", 2).expect("url");
        assert_eq!(url.path(), "/api/queues/%2F");
        let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["name"], "^acme\\-prod\\.");
        assert_eq!((query["page"].as_str(), query["use_regex"].as_str()), ("2", "true"));
    }

    #[test]
    fn a_base_path_is_kept() {
        let base = url::Url::parse("https://ops.example.com/rabbitmq/").expect("url");
        let url = page_url(&base, "prod", "acme", 1).expect("url");
        assert_eq!(url.path(), "/rabbitmq/api/queues/prod");
    }

    #[test]
    fn the_vhost_and_user_are_read_as_the_amqp_client_reads_them() {
        let uri = AMQPUri::from_str("amqp://ops:s%40cret@mq:5672/%2f").expect("uri");
        assert_eq!((uri.vhost.as_str(), uri.authority.userinfo.password.as_str()), ("/", "s@cret"));
        let uri = AMQPUri::from_str("amqp://mq").expect("uri");
        assert_eq!((uri.vhost.as_str(), uri.authority.userinfo.username.as_str()), ("/", "guest"));
    }

    #[test]
    fn a_page_without_figures_counts_zero() {
        let page: Page = serde_json::from_str(
            r#"{"items":[{"name":"a.jobs.x"},{"name":"a.jobs.y","messages_ready":3,"messages_unacknowledged":1,"consumers":2}],"page_count":1}"#,
        )
        .expect("page");
        assert_eq!(page.items[0].messages_ready, 0);
        assert_eq!((page.items[1].messages_ready, page.items[1].consumers), (3, 2));
    }

    #[test]
    fn messages_count_unacked_when_known() {
        let known = QueueFigures { ready: 2, unacked: Some(3), consumers: 1 };
        let unknown = QueueFigures { unacked: None, ..known };
        assert_eq!((known.messages(), unknown.messages()), (5, 2));
    }
}
