//! The engauge command line: `replay` and `gen` (and, with the Kafka pipeline, `run` and `demo`).

mod config;
mod replay;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use engauge_core::Millis;

use crate::config::Config;

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
    },
}

fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
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
            cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
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
