//! The load generator behind `statsctl loadtest`: simulated viewers, each polling on its own timer, through
//! stages (ramp, hold, spike, ramp down); open model with latency from the scheduled time; HDR histograms per
//! worker; thresholds; a chart. Plain HTTP/1.1 or over TLS (rustls).

pub mod chart;
pub mod engine;
pub mod http1;
pub mod outcome;
pub mod part;
pub mod profile;
pub mod shard;
pub mod stats;
pub mod tls;
pub mod verdict;

pub use engine::{run, run_part, Ran, Snapshot};
pub use profile::{event_profile, Arrival, Profile, Stage, Target};
pub use shard::Shard;
pub use stats::{LoadTestResult, Percentiles};
pub use verdict::{verdict, Thresholds, Verdict};
