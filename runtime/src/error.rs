//! The infrastructure failures every process shares: RabbitMQ and Redis.
//!
//! The scheduler's and the worker's errors each wrap one [`InfraError`]
//! instead of repeating these variants, and classify it the same way: an
//! infrastructure error is cured by reconnecting (see
//! [`supervise`](crate::supervise)), while configuration errors, which stay
//! in each process's own enum, end the process.

use crate::broker::{BrokerError, ConsumeError, PublishError};
use crate::store::StoreError;
use crate::supervise::Recoverable;

/// RabbitMQ or Redis failed; reconnecting may cure it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfraError {
    /// RabbitMQ could not be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Consuming stopped because of the broker.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// A publish was not confirmed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl Recoverable for InfraError {
    fn recoverable(&self) -> bool {
        true
    }
}

/// Lets `?` turn each infrastructure error (and [`InfraError`] itself) into
/// `$target`, through `$target::from(InfraError)`: a process error that
/// wraps one `InfraError` converts from its parts as if it listed them.
#[macro_export]
macro_rules! from_infra_errors {
    ($target:ty) => {
        $crate::from_infra_errors!(@each $target,
            $crate::broker::BrokerError,
            $crate::store::StoreError,
            $crate::broker::ConsumeError,
            $crate::broker::PublishError
        );
    };
    (@each $target:ty, $($source:ty),+) => {
        $(
            impl ::core::convert::From<$source> for $target {
                fn from(error: $source) -> Self {
                    Self::from($crate::InfraError::from(error))
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_errors_are_recoverable_and_transparent() {
        let closed = ConsumeError::Closed { queue: "acme.jobs.github".to_owned() };
        let text = closed.to_string();
        let error = InfraError::from(closed);
        assert!(error.recoverable());
        assert_eq!(error.to_string(), text);
    }
}
