//! The in-run limits the fleet is compared with: what the HTTP stack and
//! RabbitMQ do on their own, on the same machine, in the same run.

pub mod broker;
pub mod http;
