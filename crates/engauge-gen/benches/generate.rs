//! Generation throughput: lines per second into memory, structured and encoded.

use divan::{Bencher, black_box};
use engauge_gen::{GenConfig, Generator};

fn main() {
    divan::main();
}

const LINES: u64 = 1_000_000;

fn config() -> GenConfig {
    GenConfig {
        events: LINES,
        users: 1_000_000,
        days: 35,
        ..GenConfig::default()
    }
}

/// Structured events only (what an engine benchmark bypassing JSON consumes).
#[divan::bench(sample_count = 5)]
fn structured(bencher: Bencher) {
    bencher
        .counter(divan::counter::ItemsCount::new(LINES))
        .bench(|| {
            Generator::new(config())
                .map(|e| black_box(e).event_time())
                .sum::<i64>()
        });
}

/// Encoded NDJSON lines, the bytes a producer sends.
#[divan::bench(sample_count = 5)]
fn encoded(bencher: Bencher) {
    bencher
        .counter(divan::counter::ItemsCount::new(LINES))
        .bench(|| {
            let mut generator = Generator::new(config());
            let mut buf = Vec::with_capacity(512);
            let mut bytes = 0usize;
            while generator.next_into(&mut buf).is_some() {
                bytes += buf.len();
                buf.clear();
            }
            black_box(bytes)
        });
}
