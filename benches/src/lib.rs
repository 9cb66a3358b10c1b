//! Shared helpers of the benchmark harnesses: datasets, timing and memory readings.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    read_status_kb("VmHWM:") * 1024
}

/// Current resident memory (`VmRSS`), in bytes.
pub fn rss_bytes() -> u64 {
    read_status_kb("VmRSS:") * 1024
}

fn read_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time this thread has used, in seconds (wall time is noisy on a shared 2-core machine).
pub fn thread_cpu_seconds() -> f64 {
    // /proc/thread-self/stat fields 14 and 15 are utime and stime in clock ticks (100 Hz here).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// An NDJSON dataset made by `engauge-gen`, cached under `target/bench-data/` so reruns skip it.
pub fn dataset(events: u64, users: u64, days: u32, seed: u64) -> std::io::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("events-{events}-{users}-{days}-{seed}.ndjson"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let cfg = engauge_gen::GenConfig {
            events,
            users,
            days,
            seed,
            ..engauge_gen::GenConfig::default()
        };
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        engauge_gen::write_ndjson(cfg, &mut out)?;
        out.flush()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
