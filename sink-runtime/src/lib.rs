//! The adbsink data plane: consume → decode → batch → write → commit, with dead-letter and
//! error topics and the failure policy; and the Kafka provisioning the operator reuses.

pub mod error;
pub mod kafka;
pub mod provision;
pub mod records;
pub mod secret;
pub mod signal;

pub use error::{Error, Result};
pub use kafka::KafkaConnection;
pub use secret::Secret;
pub mod batch;
pub mod change;
pub mod coalesce;
pub mod database;
pub mod deadletter;
pub mod decode;
pub mod dialect;
pub mod dispatch;
pub mod fence;
pub mod fresh;
pub mod http;
pub mod isolate;
pub mod metrics;
pub mod overlap;
pub mod pipeline;
pub mod sink;
pub mod standalone;
pub mod stats;
pub mod table;
