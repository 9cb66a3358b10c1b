"""A read_committed reader that decides visibility from the transaction markers in the log.

    txn_reader.py BOOTSTRAP TOPIC OUT STOP

Reads every partition of TOPIC from the beginning and appends to the file OUT one JSON line
{"key", "value" (hex), "offset", "headers"} per record of a committed transaction (or written
outside transactions), until the file STOP exists and every partition is read to its end.

Why not the consumer's own read_committed: brokers list aborted transactions in every Fetch
response and clients skip those records. The broker the tests run (tansu) writes the commit and
abort markers into the log but sends an empty list, so stock clients show aborted records too.
This reader applies the rule the broker's list is derived from: a transactional batch belongs to
its producer's open transaction, and the producer's next marker in the partition commits or
aborts it. Records of a transaction without a marker yet are held back (not committed yet).
"""
import json
import os
import sys

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer import fetcher

# (topic, partition) -> producer id -> records of its open transaction.
PENDING = {}
# (topic, partition) -> first offset not processed yet. kafka-python moves its fetch position to
# after the last record it hands out, and records released by a marker lie before the marker, so
# it fetches some batches again: each offset is processed once.
DONE = {}


def unpack_records(self, tp, records, key_deserializer, value_deserializer):
    pending = PENDING.setdefault((tp.topic, tp.partition), {})
    done = DONE.get((tp.topic, tp.partition), 0)
    batch = records.next_batch()
    last_batch = None
    while batch is not None:
        last_batch = batch
        if batch.next_offset <= done:
            batch = records.next_batch()
            continue
        DONE[(tp.topic, tp.partition)] = done = batch.next_offset
        if batch.magic == 2 and batch.is_control_batch:
            held = pending.pop(batch.producer_id, [])
            committed = any(r.commit for r in batch)
            if os.environ.get("TXN_READER_MARKERS"):
                sys.stderr.write("marker %s at %d: %s, %d records\n" % (
                    "commit" if committed else "abort", batch.base_offset,
                    "%s.%s" % (batch.producer_id, batch.producer_epoch), len(held)))
            if committed:
                for r in held:
                    yield r
            self.next_fetch_offset = batch.next_offset
            batch = records.next_batch()
            continue
        out = []
        for r in batch:
            # The producer id and epoch ride in the unused leader_epoch field (diagnostics).
            writer = "%s.%s" % (batch.producer_id, batch.producer_epoch) if batch.magic == 2 else ""
            out.append(fetcher.ConsumerRecord(
                tp.topic, tp.partition, writer, r.offset, r.timestamp, r.timestamp_type,
                r.key, r.value, r.headers, r.checksum, -1, -1, -1))
            self.next_fetch_offset = r.offset + 1
        if batch.magic == 2 and batch.is_transactional:
            pending.setdefault(batch.producer_id, []).extend(out)
        else:
            for r in out:
                yield r
        batch = records.next_batch()
    if last_batch is not None and last_batch.magic == 2:
        self.next_fetch_offset = last_batch.next_offset
    self.drain()


fetcher.Fetcher.PartitionRecords._unpack_records = unpack_records
# Records held from earlier fetches lie before this fetch's offset, so the stock skip of records
# before it must not apply; batches already processed are skipped above (DONE).
fetcher.Fetcher.PartitionRecords._maybe_skip_record = lambda self, record: False


def main(bootstrap, topic, out_path, stop_path):
    # max_poll_records: a commit marker releases a whole transaction at once, and kafka-python
    # keeps only max_poll_records of one unpack (the rest were lost past the marker's offset).
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=10, consumer_timeout_ms=200,
                             max_poll_records=1 << 30,
                             isolation_level="read_uncommitted")
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    with open(out_path, "a") as out:
        while True:
            if os.path.exists(stop_path):
                # Done once every partition is read to its end (asked after the stop file
                # appeared, so everything written before is included).
                ends = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
            for record in consumer:
                out.write(json.dumps({
                    "key": record.key.decode() if record.key is not None else None,
                    "value": (record.value or b"").hex(),
                    "offset": record.offset,
                    "producer": record.leader_epoch,
                    "headers": {k: v.decode(errors="replace") for k, v in (record.headers or [])},
                }) + "\n")
            out.flush()
    consumer.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
