//! Shared helpers of the benchmark harnesses: datasets, timing and memory readings.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
/// A setting from the environment (`EVENTS`, `USERS`, …), or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// Child processes, HTTP and a tansu broker for the end-to-end harnesses.
pub mod process {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[derive(Debug)]
    pub struct Proc(pub Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    }

    /// User + system CPU seconds of a process (`self` or a pid).
    pub fn cpu_seconds(pid: &str) -> f64 {
        stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
    }

    /// User + system time from the text of a `/proc/…/stat` file (0 when unreadable).
    fn stat_cpu_seconds(stat: &str) -> f64 {
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// CPU seconds of the threads of process `pid`, in four parts: the main thread (the
    /// pipeline, for `engauge run`), librdkafka's broker threads (fetching, producing), the
    /// metrics endpoint's threads, and the rest. Per-thread figures tell a change of a few
    /// percent apart from this machine's drift, which moves the whole process.
    pub fn cpu_seconds_by_thread(pid: &str) -> [f64; 4] {
        let mut parts = [0.0; 4];
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return parts;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let Some((head, _)) = stat.rsplit_once(')') else {
                continue;
            };
            let (tid, name) = head.split_once(" (").unwrap_or(("", ""));
            let part = if tid == pid {
                0
            } else if name.starts_with("rdk:broker") {
                1
            } else if name.contains("metrics") {
                2
            } else {
                3
            };
            parts[part] += stat_cpu_seconds(&stat);
        }
        parts
    }

    pub fn http_get(port: u16, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text.split_once("\r\n\r\n")?.1.to_owned())
    }

    pub fn metric(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// `engauge gen` of `events` events for `users` users over `days` days ending about a day
    /// ago (the generator's span varies by an hour or two) into topic `events` of `bootstrap`.
    pub fn gen_history(engauge: &Path, bootstrap: &str, events: u64, users: u64, days: i64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let day = engauge_core::time::DAY;
        let first = engauge_core::time::format_rfc3339(now - days * day - day);
        let status = Command::new(engauge)
            .args(["gen", "--brokers", bootstrap, "--topic", "events"])
            .args(["--users", &users.to_string(), "--days", &days.to_string()])
            .args(["--events", &events.to_string(), "--start", &first])
            .stderr(Stdio::null())
            .status()
            .expect("engauge gen");
        assert!(status.success());
    }

    /// The tansu broker and the release `engauge` binary the harnesses run.
    pub fn binaries() -> (PathBuf, PathBuf) {
        let tansu = root().join(".cache/test-deps/tansu");
        let engauge = root().join("target/release/engauge");
        assert!(tansu.exists(), "run scripts/setup-test-deps");
        assert!(engauge.exists(), "run cargo build --release -p engauge");
        (tansu, engauge)
    }

    /// A tansu broker pinned to core 0 on a free port, with `topics` (name, partitions) created:
    /// the process (stopped when dropped) and its bootstrap address.
    pub fn start_tansu(tansu: &Path, topics: &[(&str, u32)]) -> (Proc, String) {
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let url = format!("tcp://{bootstrap}");
        let broker = Proc(
            Command::new("taskset")
                .args(["-c", "0"])
                .arg(tansu)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tansu"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&bootstrap).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        for (topic, partitions) in topics {
            let ok = Command::new(tansu)
                .args(["topic", "create", "--broker", &url, "--partitions"])
                .arg(partitions.to_string())
                .arg(topic)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "create {topic}");
        }
        (broker, bootstrap)
    }
}
