"""Drives the official Python client (pulsar-client) through a short, fixed scenario for the
golden-frame test: produce one message with a key and properties (no batching), produce a batch of
three, consume all four and acknowledge them, close. Prints a JSON summary on stdout.

usage: golden_client.py SERVICE_URL TOPIC SUBSCRIPTION
"""
import json
import sys

import pulsar


def main():
    service_url, topic, subscription = sys.argv[1:4]
    client = pulsar.Client(
        service_url,
        operation_timeout_seconds=20,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
    )
    try:
        consumer = client.subscribe(
            topic,
            subscription,
            consumer_type=pulsar.ConsumerType.Exclusive,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        single = client.create_producer(topic, producer_name="golden-single", batching_enabled=False)
        single.send(b"golden payload", properties={"colour": "blue", "n": "42"}, partition_key="key-1")
        single.close()

        batched = client.create_producer(
            topic,
            producer_name="golden-batch",
            batching_enabled=True,
            batching_max_messages=3,
            batching_max_publish_delay_ms=10_000,
        )
        results = []
        for i in range(3):
            batched.send_async(
                f"batch-{i}".encode(),
                lambda res, _msg_id: results.append(res == pulsar.Result.Ok),
                properties={"i": str(i)},
                partition_key=f"bk-{i}",
            )
        batched.flush()
        batched.close()
        if results != [True] * 3:
            raise SystemExit(f"batched sends failed: {results}")

        received = []
        for _ in range(4):
            msg = consumer.receive(timeout_millis=20_000)
            received.append(
                {
                    "data": msg.data().decode(),
                    "key": msg.partition_key(),
                    "properties": msg.properties(),
                }
            )
            consumer.acknowledge(msg)
        consumer.close()
    finally:
        client.close()
    json.dump({"received": received}, sys.stdout)


if __name__ == "__main__":
    main()
