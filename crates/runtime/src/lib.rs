//! The shared runtime of the Portcullis services: configuration, the NATS bus (the only
//! code that calls async-nats), CloudEvents publishing, crypto, signing keys, telemetry and
//! shutdown.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod buckets;
pub mod bus;
pub mod config;
pub mod crypto;
pub mod duration;
pub mod events;
pub mod flow;
pub mod pages;
pub mod reload;
pub mod shutdown;
pub mod signing;
pub mod telemetry;

pub use bus::{Bus, BusError};
pub use config::Config;
pub use shutdown::Shutdown;

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
