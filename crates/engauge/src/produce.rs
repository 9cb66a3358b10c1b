//! Feeding generated traffic into Kafka: `engauge gen --brokers …` and the demo's producer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engauge_gen::{GenConfig, Generator, user_id};
use engauge_kafka::{KafkaSettings, OutRecord, Outbox};

use crate::pipeline::now_millis;

/// Produces `cfg`'s stream to `topic`, keyed by user id. With `paced`, each line waits until the
/// wall clock reaches its emission time (a live stream); otherwise lines go as fast as the
/// broker takes them. Returns the number of lines produced.
pub fn produce(
    brokers: &str,
    topic: &str,
    cfg: GenConfig,
    paced: bool,
    shutdown: &Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let settings = KafkaSettings {
        brokers: brokers.to_owned(),
        group_id: String::new(),
        input_topics: vec![topic.to_owned()],
        snapshot_topic: String::new(),
        dead_letter_topic: String::new(),
        checkpoint_topic: String::new(),
        state_topic: String::new(),
        consumer: Default::default(),
        producer: Default::default(),
    };
    let mut outbox = Outbox::new(&settings)?;
    let mut generator = Generator::new(cfg);
    let mut sent = 0u64;
    let mut record = OutRecord {
        topic: topic.to_owned(),
        key: None,
        payload: Vec::with_capacity(1024),
        headers: Vec::new(),
    };
    while !shutdown.load(Ordering::Relaxed) {
        if paced && let Some(at) = generator.peek_time() {
            let wait = at - now_millis();
            if wait > 0 {
                outbox.poll(Duration::from_millis(wait.min(200) as u64));
                continue;
            }
        }
        let Some(event) = generator.next_event() else {
            break;
        };
        record.payload.clear();
        event.encode_into(&mut record.payload);
        record.key = Some(user_id(event.user_index()).into_bytes());
        outbox.send(&record);
        sent += 1;
        if sent.is_multiple_of(1024) {
            outbox.poll(Duration::ZERO);
        }
    }
    outbox.flush(Duration::from_secs(10));
    Ok(sent)
}
