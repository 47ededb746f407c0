//! Measuring helpers the benchmark binaries share: peak memory windows (Linux), medians
//! and percentiles, and replica files.

use std::path::Path;
use std::time::{Duration, Instant};

use dal::prelude::*;
use sync::SyncClient;

/// The process's peak resident memory since the last [`reset_peak`], in KiB (Linux).
pub fn peak_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Current resident memory in KiB (Linux).
pub fn resident_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts a new peak-memory window (`/proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `work` in a fresh peak-memory window: (its output, seconds, peak growth over the
/// resident size before it, in MiB).
pub async fn measured<T>(work: impl std::future::Future<Output = T>) -> (T, f64, Option<f64>) {
    reset_peak();
    let before = resident_kib();
    let started = Instant::now();
    let out = work.await;
    let seconds = started.elapsed().as_secs_f64();
    let growth = match (peak_kib(), before) {
        (Some(peak), Some(before)) => Some(peak.saturating_sub(before) as f64 / 1024.0),
        _ => None,
    };
    (out, seconds, growth)
}

/// The median of `samples`.
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// The `p` quantile (0..=1) of `samples`, by rank.
pub fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// A fresh SQLite replica `name` in `dir`, with sync turned on.
pub async fn replica(dir: &Path, name: &str) -> SyncClient {
    let db = Database::connect(&Config::sqlite(dir.join(format!("{name}.db"))))
        .await
        .expect("replica opens");
    SyncClient::open(db).await.expect("sync turns on")
}

/// Removes a SQLite file and its journal companions (a 200k-row replica is ~200 MB).
pub fn remove_replica(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}
