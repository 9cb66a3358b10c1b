"""An independent Kafka client for engauge's end-to-end tests (kafka-python, pure Python).

produce BOOTSTRAP TOPIC FILE   one message per line of FILE, keyed by its user_id when it has one
consume BOOTSTRAP TOPIC IDLE   prints every record of TOPIC (all partitions, from the beginning)
                               as a JSON line {"key", "value", "headers"} until IDLE seconds pass
                               with nothing new
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(bootstrap, topic, path):
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    sent = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            key = None
            try:
                user = json.loads(line).get("user_id")
                if isinstance(user, str):
                    key = user.encode()
            except Exception:
                pass
            producer.send(topic, value=line, key=key)
            sent += 1
    producer.flush(timeout=120)
    producer.close()
    print(sent)


def consume(bootstrap, topic, idle):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=10, consumer_timeout_ms=200)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    last = time.time()
    while time.time() - last < idle:
        for record in consumer:
            print(json.dumps({
                "key": record.key.decode() if record.key is not None else None,
                "value": (record.value or b"").hex(),
                "headers": {k: v.decode(errors="replace") for k, v in (record.headers or [])},
            }))
            last = time.time()
    consumer.close()


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "consume":
        consume(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(f"unknown command {command}")
