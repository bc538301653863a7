//! PLACEHOLDER: being written.

use std::time::Duration;

use async_trait::async_trait;
use scimfleet_runtime::config::{ConfigError, SsfSource};

use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received};

/// Placeholder.
#[derive(Debug)]
pub struct Ssf {
    id: String,
}

impl Ssf {
    /// Placeholder.
    pub fn load(
        config: &scimfleet_runtime::Config,
        index: usize,
        source: &SsfSource,
    ) -> Result<Self, ConfigError> {
        let _ = source;
        Err(ConfigError::invalid(&config.origin, format!("sources[{index}].kind"), "not built yet"))
    }
}

#[async_trait]
impl Adapter for Ssf {
    fn id(&self) -> &str {
        &self.id
    }
    fn dedupe_for(&self) -> Duration {
        Duration::ZERO
    }
    async fn receive(&self, _context: &Context, _request: &Received<'_>) -> Receipt {
        unimplemented!()
    }
    fn hints(&self, _delivery: &Delivery) -> Result<Vec<Hint>, String> {
        unimplemented!()
    }
    async fn resolve(&self, _context: &Context, _hint: &Hint) -> Result<Observed, Failure> {
        unimplemented!()
    }
}
