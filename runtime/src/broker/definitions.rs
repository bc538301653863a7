//! The topology as data, and as RabbitMQ definitions.
//!
//! [`Topology::declarations`] lists every exchange, queue and binding of a
//! namespace with their arguments (from `quorum`, `delay_queue_arguments`
//! and `retry_route`); [`Topology::declare`] declares that list, and
//! [`definitions`] turns that list, the vhost and one
//! least-privilege user per role into the JSON RabbitMQ imports
//! (`rabbitmqctl import_definitions`, or `load_definitions` at boot;
//! <https://www.rabbitmq.com/docs/definitions>), so a broker can be set up
//! before any scimfleet process starts, and reviewed as a file.
//!
//! Users come without a password (`password_hash` empty: they cannot log
//! in until one is set, by `deploy/rabbitmq/setup-users.sh`); the file never
//! holds a secret. Their permissions are those the script grants, checked
//! by a test. There are no policies: every queue property is an `x-`
//! argument of its declaration, so declaring and importing agree.
//! `tests/it/definitions.rs` checks that a broker holds exactly these
//! exchanges, queues, bindings and arguments after `Topology::declare`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use scimfleet_schemas::AppId;
use serde_json::{Value, json};

use super::BrokerError;
use super::topology::{LEAVER_LANE, Topology, declare_queue, text};

/// Every exchange, queue and binding of a namespace, in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Declarations {
    /// Durable exchanges.
    pub exchanges: Vec<ExchangeDeclaration>,
    /// Durable queues.
    pub queues: Vec<QueueDeclaration>,
    /// Queue bindings.
    pub bindings: Vec<BindingDeclaration>,
}

/// One durable exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDeclaration {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ExchangeKind,
}

/// One durable queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclaration {
    /// Its name.
    pub name: String,
    /// Its `x-` arguments.
    pub arguments: FieldTable,
}

/// A queue bound to an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDeclaration {
    /// The exchange.
    pub exchange: String,
    /// The queue.
    pub queue: String,
    /// The routing key (empty for fanout and headers exchanges).
    pub routing_key: String,
    /// The binding's arguments (a headers exchange's match).
    pub arguments: FieldTable,
}

/// The RabbitMQ user of one role, and what it may do in the namespace's vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleUser {
    /// `intake`, `scheduler`, `worker` or `admin`; the user is `{ns}-{role}`.
    pub role: &'static str,
    /// Resources it may declare or delete (regular expression).
    pub configure: String,
    /// Exchanges it may publish to.
    pub write: String,
    /// Queues it may consume from (and exchanges it may bind from).
    pub read: String,
    /// User tags (`management` lets the operator read the management API).
    pub tags: &'static [&'static str],
}

impl Topology {
    /// Everything [`Topology::declare`] declares for `apps`, and the queues
    /// of the intake's served `sources` (none: none of theirs).
    pub fn declarations(&self, apps: &[AppId], sources: &[&str]) -> Declarations {
        let mut d = Declarations { exchanges: Vec::new(), queues: Vec::new(), bindings: Vec::new() };
        for (name, kind) in [
            (self.events_exchange(), ExchangeKind::Topic),
            (self.events_dlx(), ExchangeKind::Fanout),
            (self.jobs_exchange(), ExchangeKind::Topic),
            (self.jobs_dlx(), ExchangeKind::Direct),
            (self.retry_exchange(), ExchangeKind::Headers),
            (self.recheck_exchange(), ExchangeKind::Headers),
        ] {
            d.exchanges.push(ExchangeDeclaration { name, kind });
        }
        d.queue(self.events_dlq(), self.quorum(None));
        d.bind(&self.events_dlx(), &self.events_dlq(), "", FieldTable::default());
        d.queue(self.events_queue(), self.quorum(Some((&self.events_dlx(), ""))));
        // `#`: every message on the exchange is taken, so an event with a wrong
        // routing key is dead-lettered with a reason instead of silently dropped.
        d.bind(&self.events_exchange(), &self.events_queue(), "#", FieldTable::default());
        for app in apps {
            let dlx = self.jobs_dlx();
            d.queue(self.app_dlq(app), self.quorum(None));
            d.bind(&dlx, &self.app_dlq(app), app.as_str(), FieldTable::default());
            d.queue(self.job_queue(app), self.quorum(Some((&dlx, app.as_str()))));
            // `{app}.*` matches two words only, so leaver keys (three words)
            // reach the leaver lane alone.
            d.bind(&self.jobs_exchange(), &self.job_queue(app), &format!("{app}.*"), FieldTable::default());
            d.queue(self.leaver_queue(app), self.quorum(Some((&dlx, app.as_str()))));
            let leavers = format!("{app}.*.{LEAVER_LANE}");
            d.bind(&self.jobs_exchange(), &self.leaver_queue(app), &leavers, FieldTable::default());
            let retries = self
                .retry_tiers_ms()
                .iter()
                .map(|&ms| (self.retry_exchange(), self.retry_queue(app, ms), ms));
            let rechecks = self
                .recheck_delays_ms(app)
                .iter()
                .map(|&ms| (self.recheck_exchange(), self.recheck_queue(app, ms), ms));
            for (exchange, queue, delay_ms) in retries.chain(rechecks) {
                d.queue(queue.clone(), self.delay_queue_arguments(delay_ms));
                // Routed by the headers of `retry_route`; `x-match: all`: both must
                // match, app and delay (https://www.rabbitmq.com/docs/exchanges#headers).
                let mut binding = Self::retry_route(app, delay_ms);
                binding.insert("x-match".into(), text("all"));
                d.bind(&exchange, &queue, "", binding);
            }
        }
        if !sources.is_empty() {
            d.queue(self.sources_dlq(), self.quorum(None));
            for source in sources {
                d.queue(self.source_queue(source), self.quorum(None));
            }
        }
        d
    }
}

impl Declarations {
    /// Declares every exchange, queue and binding (idempotent: safe from
    /// every process at every start).
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        for exchange in &self.exchanges {
            let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
            let name = exchange.name.as_str();
            channel
                .exchange_declare(name.into(), exchange.kind.clone(), options, FieldTable::default())
                .await
                .map_err(BrokerError::channel(format!("declare exchange {name}")))?;
        }
        for queue in &self.queues {
            declare_queue(channel, &queue.name, queue.arguments.clone()).await?;
        }
        for b in &self.bindings {
            let (queue, exchange) = (b.queue.as_str(), b.exchange.as_str());
            let options = QueueBindOptions::default();
            channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    b.routing_key.as_str().into(),
                    options,
                    b.arguments.clone(),
                )
                .await
                .map_err(BrokerError::channel(format!("bind {queue} to {exchange}")))?;
        }
        Ok(())
    }

    fn queue(&mut self, name: String, arguments: FieldTable) {
        self.queues.push(QueueDeclaration { name, arguments });
    }

    fn bind(&mut self, exchange: &str, queue: &str, routing_key: &str, arguments: FieldTable) {
        let (exchange, queue, routing_key) = (exchange.to_owned(), queue.to_owned(), routing_key.to_owned());
        self.bindings.push(BindingDeclaration { exchange, queue, routing_key, arguments });
    }
}

/// The users of the roles of namespace `ns`, with the permissions
/// `deploy/rabbitmq/setup-users.sh` grants: only the operator (`admin`)
/// may configure; each role writes and reads only what it uses. Namespaces
/// hold only `[a-z0-9-]`, so they need no escaping in a pattern.
pub fn role_users(ns: &str) -> Vec<RoleUser> {
    let nothing = "^$".to_owned();
    vec![
        // The default exchange and its own source queues: a delivery of an
        // identity-provider source is kept on {ns}.sources.{id}, then consumed.
        RoleUser {
            role: "intake",
            configure: nothing.clone(),
            write: format!(r"^({ns}\.events|amq\.default)$"),
            read: format!(r"^{ns}\.sources\.[^.]+$"),
            tags: &[],
        },
        // The default exchange: an event planned elsewhere goes back to the intake queue.
        RoleUser {
            role: "scheduler",
            configure: nothing.clone(),
            write: format!(r"^({ns}\.(jobs|events\.dlx)|amq\.default)$"),
            read: format!(r"^{ns}\.events\.intake$"),
            tags: &[],
        },
        RoleUser {
            role: "worker",
            configure: nothing,
            write: format!(r"^{ns}\.jobs(\.retry|\.recheck|\.dlx)?$"),
            read: format!(r"^{ns}\.jobs\.[^.]+(\.leavers)?$"),
            tags: &[],
        },
        RoleUser {
            role: "admin",
            configure: format!(r"^{ns}\."),
            write: format!(r"^{ns}\."),
            read: format!(r"^{ns}\."),
            tags: &["management"],
        },
    ]
}

/// The vhost of an AMQP URL: its path, percent-decoded, `/` when empty.
pub fn vhost_of(url: &str) -> String {
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(uri) if !uri.vhost.is_empty() => uri.vhost,
        _ => "/".to_owned(),
    }
}

/// The RabbitMQ definitions of the configuration: its vhost, the role
/// users and their permissions, and every exchange, queue and binding of
/// its apps and served sources.
pub fn definitions(config: &crate::Config) -> Value {
    let vhost = vhost_of(config.broker.url.first().expose());
    let apps: Vec<AppId> = config.apps.iter().map(|a| a.id.clone()).collect();
    let sources: Vec<&str> = config.sources.iter().filter(|s| s.is_served()).map(|s| s.id()).collect();
    let declared = Topology::of(config).declarations(&apps, &sources);
    let users = role_users(&config.namespace);
    let user = |u: &RoleUser| format!("{}-{}", config.namespace, u.role);
    json!({
        "vhosts": [{ "name": vhost }],
        "users": users.iter().map(|u| json!({
            "name": user(u),
            // No password: set one with setup-users.sh after the import.
            "password_hash": "",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": u.tags,
            "limits": {},
        })).collect::<Vec<_>>(),
        "permissions": users.iter().map(|u| json!({
            "user": user(u), "vhost": vhost, "configure": u.configure, "write": u.write, "read": u.read,
        })).collect::<Vec<_>>(),
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "exchanges": declared.exchanges.iter().map(|e| json!({
            "name": e.name, "vhost": vhost, "type": kind_name(&e.kind),
            "durable": true, "auto_delete": false, "internal": false, "arguments": {},
        })).collect::<Vec<_>>(),
        "queues": declared.queues.iter().map(|q| json!({
            "name": q.name, "vhost": vhost, "durable": true, "auto_delete": false,
            "arguments": table(&q.arguments),
        })).collect::<Vec<_>>(),
        "bindings": declared.bindings.iter().map(|b| json!({
            "source": b.exchange, "vhost": vhost, "destination": b.queue, "destination_type": "queue",
            "routing_key": b.routing_key, "arguments": table(&b.arguments),
        })).collect::<Vec<_>>(),
    })
}

fn kind_name(kind: &ExchangeKind) -> &str {
    match kind {
        ExchangeKind::Custom(name) => name,
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Headers => "headers",
        ExchangeKind::Topic => "topic",
    }
}

/// An AMQP table as the JSON of the management API and definitions.
pub fn table(table: &FieldTable) -> Value {
    Value::Object(table.inner().iter().map(|(k, v)| (k.as_str().to_owned(), value(v))).collect())
}

fn value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(items) => Value::Array(items.as_slice().iter().map(self::value).collect()),
        AMQPValue::FieldTable(inner) => table(inner),
        AMQPValue::DecimalValue(_) | AMQPValue::ByteArray(_) | AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vhost_is_the_decoded_path_of_the_url() {
        assert_eq!(vhost_of("amqp://u:p@h:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://u:p@h:5672"), "/");
        assert_eq!(vhost_of("amqps://u:p@h/acme%2Dprod"), "acme-prod");
    }

    #[test]
    fn every_app_has_its_lanes_dead_letters_and_delay_queues_bound() {
        let text = "namespace = \"t1\"\n[[apps]]\nid = \"git\"\nbase_url = \"https://g.example.com/scim\"\ntoken_env = \"T\"\n";
        let config = crate::Config::from_toml(text, "test", ".".into(), []).expect("config");
        let defs = definitions(&config);
        let names = |kind: &str| -> Vec<String> {
            defs[kind]
                .as_array()
                .expect(kind)
                .iter()
                .map(|q| q["name"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        let queues = names("queues");
        for queue in [
            "t1.events.intake",
            "t1.jobs.git",
            "t1.jobs.git.leavers",
            "t1.jobs.git.dlq",
            "t1.jobs.git.retry.1000",
            "t1.jobs.git.recheck.900000",
        ] {
            assert!(queues.contains(&queue.to_owned()), "{queue} missing from {queues:?}");
        }
        assert!(!queues.iter().any(|q| q.contains(".sources.")), "no served source, no source queue");
        assert_eq!(defs["vhosts"][0]["name"], "/");
        let retry = defs["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .find(|b| b["destination"] == "t1.jobs.git.retry.1000");
        let retry = retry.expect("retry binding");
        assert_eq!(retry["source"], "t1.jobs.retry");
        assert_eq!(
            retry["arguments"],
            json!({"x-match": "all", "scimfleet-retry-app": "git", "scimfleet-retry-tier": "1000"})
        );
        let text = defs.to_string();
        assert!(text.contains("\"password_hash\":\"\"") && !text.contains("guest"), "no password, no URL");
    }
}
