//! The engauge command line: `run`, `demo`, `replay` and `gen`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Parser, Subcommand};

use engauge::config::Config;
use engauge::pipeline::{self, now_millis};
use engauge::telemetry::Telemetry;
use engauge::{demo, produce, replay};

/// Closing window instances builds and drops many small strings; mimalloc makes that cheap
/// (glibc's allocator took a fifth of the pipeline's CPU on sparse data). Built without
/// transparent huge pages (feature `no_thp`): each first touch of a huge page zeroes 2 MiB, and
/// the pipeline's growing buffers and metrics threads touch many sparsely — zeroing took 8 % of
/// the pipeline thread in a backfill, and runs without were 5–10 % cheaper (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "engauge",
    version,
    about = "Live engagement KPIs from product telemetry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume events from Kafka, serve /metrics, publish snapshots and dead letters.
    Run {
        /// Configuration file (TOML); defaults when omitted. ENGAUGE__… variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Everything in one process, nothing to install: an in-process Kafka, generated traffic,
    /// the pipeline, /metrics and a live view in the terminal.
    Demo {
        /// Configuration file (TOML); Kafka settings in it are replaced by the in-process cluster.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compute snapshots from an NDJSON event file (or stdin) without Kafka; print them as NDJSON.
    Replay {
        /// Configuration file (TOML); defaults when omitted. ENGAUGE__… variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// NDJSON events, one per line; `-` for stdin.
        #[arg(long, default_value = "-")]
        input: String,
    },
    /// Write a realistic synthetic event stream as NDJSON.
    Gen {
        /// Number of lines to write.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Size of the user population (activity is Zipf-distributed over it).
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Days of event time the stream spans.
        #[arg(long, default_value_t = 35)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Event time of the first event, RFC 3339; default 2026-01-01T00:00:00Z.
        #[arg(long)]
        start: Option<String>,
        /// Share of malformed lines (for exercising the dead-letter path).
        #[arg(long, default_value_t = 0.0)]
        bad_ratio: f64,
        /// Output file; stdout when omitted.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Produce into Kafka at these bootstrap servers instead of writing NDJSON.
        #[arg(long)]
        brokers: Option<String>,
        /// Topic to produce to (with --brokers).
        #[arg(long, default_value = "events")]
        topic: String,
        /// Events per second, live (event time = now); without it, as fast as possible.
        #[arg(long)]
        rate: Option<f64>,
    },
}

/// A flag set by SIGTERM or SIGINT: the pipeline stops fetching, flushes, commits and leaves.
fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("engauge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let shutdown = shutdown_flag()?;
            let telemetry = Arc::new(Telemetry::new()?);
            let server = engauge_metrics::MetricsServer::start(
                config.http_listen,
                telemetry.registry.clone(),
                Arc::clone(&telemetry.health),
            )
            .with_context(|| format!("cannot listen on {}", config.http_listen))?;
            eprintln!("engauge: serving http://{}/metrics", server.local_addr());
            let result = pipeline::run(&config, shutdown, &telemetry);
            server.shutdown();
            result
        }
        Command::Demo { config } => {
            let config = Config::load(config.as_deref(), std::env::vars())?;
            demo::demo(config, shutdown_flag()?)
        }
        Command::Replay { config, input } => {
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let stdout = io::stdout().lock();
            let output = BufWriter::with_capacity(1 << 16, stdout);
            let summary = if input == "-" {
                replay::replay(&config, io::stdin().lock(), output, now_millis)?
            } else {
                let file = File::open(&input).with_context(|| format!("cannot open {input}"))?;
                replay::replay(
                    &config,
                    BufReader::with_capacity(1 << 16, file),
                    output,
                    now_millis,
                )?
            };
            eprint!("{}", summary.render());
            Ok(())
        }
        Command::Gen {
            events,
            users,
            days,
            seed,
            start,
            bad_ratio,
            output,
            brokers,
            topic,
            rate,
        } => {
            let mut cfg = engauge_gen::GenConfig {
                events,
                users,
                days,
                seed,
                bad_ratio,
                ..engauge_gen::GenConfig::default()
            };
            if let Some(start) = start {
                cfg.start = engauge_codec::parse_rfc3339(&start)
                    .with_context(|| format!("--start {start:?} is not an RFC 3339 time"))?;
            }
            if let Some(rate) = rate {
                if !rate.is_finite() || rate <= 0.0 {
                    anyhow::bail!("--rate must be positive");
                }
                cfg = engauge_gen::GenConfig {
                    events,
                    users,
                    seed,
                    bad_ratio,
                    ..engauge_gen::GenConfig::live(now_millis(), rate * 86_400.0)
                };
            }
            cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(brokers) = brokers {
                let sent =
                    produce::produce(&brokers, &topic, cfg, rate.is_some(), &shutdown_flag()?)?;
                eprintln!("engauge gen: produced {sent} events to {topic}");
                return Ok(());
            }
            let written = match output {
                Some(path) => {
                    let file = File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    engauge_gen::write_ndjson(cfg, BufWriter::with_capacity(1 << 16, file))?
                }
                None => {
                    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
                    let n = engauge_gen::write_ndjson(cfg, &mut out)?;
                    out.flush()?;
                    n
                }
            };
            eprintln!("engauge gen: wrote {written} lines");
            Ok(())
        }
    }
}
