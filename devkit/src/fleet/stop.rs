//! Stopping a fleet, or one of its servers: processes cancelled and awaited,
//! the namespace's queues, exchanges and Redis keys deleted, even when a
//! failed test drops the fleet without stopping it.

use scimfleet_runtime::Store;
use scimfleet_runtime::broker::{self, Topology};
use scimfleet_schemas::AppId;

use super::{Fleet, FleetError};
use crate::scim_server::ScimServer;

impl Fleet {
    /// Takes `app`'s server down: its address refuses connections until
    /// [`Fleet::restart_server`]. Returns that address.
    pub async fn stop_server(&mut self, app: &str) -> Result<std::net::SocketAddr, FleetError> {
        let id = AppId::parse(app)?;
        // A clone is shut down; the handle kept in the map still reads the
        // stopped server's state and request log.
        let server = self.servers.get(&id).ok_or_else(|| format!("no app `{app}`"))?.clone();
        let addr = server.addr();
        server.shutdown().await;
        Ok(addr)
    }

    /// Brings `app` back on the address it had, as a new, empty server.
    pub async fn restart_server(&mut self, app: &str, addr: std::net::SocketAddr) -> Result<(), FleetError> {
        let server = ScimServer::start_on(addr, self.token.clone()).await?;
        self.servers.insert(AppId::parse(app)?, server);
        Ok(())
    }

    /// Stops the processes and the servers, and deletes the namespace's
    /// queues, exchanges and Redis keys.
    pub async fn stop(mut self) -> Result<(), FleetError> {
        self.stopped = true;
        self.shutdown.cancel();
        let mut failures = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let apps: Vec<_> = self.config.apps.iter().map(|a| a.id.clone()).collect();
        Topology::of(&self.config).delete(self.publisher.channel(), &apps).await?;
        // A Redis connection broken since the last command (a test that
        // restarted Redis) fails once, then reconnects: one retry.
        if self.store.delete_namespace().await.is_err() {
            self.store.delete_namespace().await?;
        }
        let _closed = self.publisher.channel().close(200, "fleet stopped".into()).await;
        let _closed = self.connection.close(200, "fleet stopped".into()).await;
        for server in std::mem::take(&mut self.servers).into_values() {
            server.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.token_dir);
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ").into()) }
    }
}

impl Drop for Fleet {
    /// A fleet dropped without `stop` (a failed assertion, say) still removes
    /// its namespace. `Drop` cannot await, so the clean-up runs on a thread
    /// with a runtime of its own, and the drop waits for it.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.shutdown.cancel();
        let config = self.config.clone();
        let token_dir = self.token_dir.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
                if let Ok(connection) = broker::connect(&config.broker, "scimfleet-fleet-cleanup").await {
                    if let Ok(channel) = connection.create_channel().await {
                        let _ = Topology::of(&config).delete(&channel, &apps).await;
                    }
                    let _ = connection.close(200, "fleet dropped".into()).await;
                }
                if let Ok(store) = Store::connect(&config.redis, &config.namespace).await {
                    let _ = store.delete_namespace().await;
                }
            });
            let _ = std::fs::remove_dir_all(&token_dir);
        });
        let _ = cleanup.join();
    }
}
