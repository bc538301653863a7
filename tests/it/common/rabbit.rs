//! A RabbitMQ node of a test's own, for tests that kill and restart the
//! broker without disturbing the shared one the other tests use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scimfleet_devkit::fleet::unique_namespace;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A RabbitMQ node of the test's own: free ports, a fresh data directory, no
/// plugins (faster start), none of the machine's configuration. Killed and
/// its directory removed on drop.
pub struct RabbitNode {
    dir: PathBuf,
    name: String,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
    /// Whether the node listens for AMQP over TLS only (`rabbitmq.conf` in `dir`).
    tls: bool,
}

/// The TLS listener of a [`RabbitNode::with_tls`] node: PEM files.
pub struct NodeTls<'a> {
    /// The CA bundle client certificates are checked against.
    pub ca: &'a Path,
    /// The server certificate and key.
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Refuse clients that present no certificate (mutual TLS).
    pub require_client_cert: bool,
}

impl RabbitNode {
    pub fn new() -> Self {
        let mut node = Self::create(None);
        node.spawn();
        node
    }

    /// A node with an AMQP-over-TLS listener and no plaintext one
    /// (<https://www.rabbitmq.com/docs/ssl#enabling-tls>).
    pub fn with_tls(tls: &NodeTls<'_>) -> Self {
        let mut node = Self::create(Some(tls));
        node.spawn();
        node
    }

    fn create(tls: Option<&NodeTls<'_>>) -> Self {
        let name = unique_namespace("sf-crash");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("node directory");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        let port = free_port();
        let dist_port = std::iter::repeat_with(free_port).find(|&p| p != port).expect("a second free port");
        if let Some(tls) = tls {
            let conf = format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = {}\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display(),
                tls.require_client_cert
            );
            std::fs::write(dir.join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
        }
        Self { dir, name, port, dist_port, child: None, tls: tls.is_some() }
    }

    /// Starts the node on this node's ports and data directory, so a restart
    /// finds the durable queues and persistent messages of the last run.
    pub fn spawn(&mut self) {
        let script = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        // The Debian wrapper in /usr/sbin switches to the `rabbitmq` user;
        // the script behind it runs as whoever we are.
        let program = if script.exists() { script } else { Path::new("rabbitmq-server") };
        let dir = &self.dir;
        let mut command = Command::new(program);
        if self.tls {
            // The listeners come from rabbitmq.conf: no plaintext one at all.
            command.env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"));
        } else {
            command
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", self.port.to_string())
                .env("RABBITMQ_CONFIG_FILE", dir.join("absent"));
        }
        let child = command
            .env("HOME", dir) // the Erlang cookie goes here
            .env("RABBITMQ_NODENAME", format!("{}@localhost", self.name))
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("absent.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("absent.env"))
            // The script then execs the VM instead of wrapping it in a shell,
            // so the child is the node itself: a kill reaches it, and the
            // VM's helper processes exit with it. It stays in the test's
            // process group, which nextest kills when the test times out.
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed by deploy/services.sh");
        self.child = Some(child);
    }

    /// Waits until the node accepts AMQP connections.
    pub async fn wait_ready(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "RabbitMQ node {} exited ({exited:?})", self.name);
            assert!(
                tokio::time::Instant::now() < deadline,
                "RabbitMQ node {} did not listen on {} within {within:?}",
                self.name,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to the node: a clean shutdown (the VM stops its applications
    /// and syncs its data), waited for.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
    }

    /// SIGSTOP to the node: it holds every connection open and answers
    /// nothing (a broker stalled by a long GC, a full disk, a paused VM)
    /// until [`RabbitNode::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a paused node carries on where it stopped.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
        }
    }

    /// SIGKILL to the node: a crash, not a shutdown.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!("{scheme}://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
