"""The official Python client against the embedded broker (tests/tests/embedded.rs runs it).

Usage: embedded_interop.py SERVICE_URL PARTITIONED_TOPIC
Each check prints "ok NAME"; any failure raises (non-zero exit).
"""
import sys
import time

import pulsar
from pulsar import ConsumerType, InitialPosition, MessageId

url, partitioned = sys.argv[1], sys.argv[2]
client = pulsar.Client(url, operation_timeout_seconds=10)
TIMEOUT = 10000


def drain(consumer, n, ack=True):
    out = []
    for _ in range(n):
        m = consumer.receive(timeout_millis=TIMEOUT)
        if ack:
            consumer.acknowledge(m)
        out.append(m)
    return out


def nothing_more(consumer, ms=300):
    try:
        m = consumer.receive(timeout_millis=ms)
    except pulsar.Timeout:
        return
    raise AssertionError("unexpected message %r" % m.data())


def check(name):
    print("ok", name, flush=True)


# produce / consume, batching and compression
for i, (batching, compression) in enumerate([
        (False, pulsar.CompressionType.NONE),
        (True, pulsar.CompressionType.LZ4),
        (True, pulsar.CompressionType.ZSTD)]):
    topic = "py-roundtrip-%d" % i
    c = client.subscribe(topic, "s", initial_position=InitialPosition.Earliest)
    p = client.create_producer(topic, batching_enabled=batching, compression_type=compression,
                               batching_max_publish_delay_ms=10)
    for n in range(50):
        p.send_async(("m%d" % n).encode(), None, properties={"n": str(n)}, partition_key="k")
    p.flush()
    got = drain(c, 50)
    assert [m.data().decode() for m in got] == ["m%d" % n for n in range(50)], got
    assert got[7].properties() == {"n": "7"}
    assert got[7].partition_key() == "k"
    nothing_more(c)
    p.close()
    c.close()
check("round trip, batching, compression")

# subscription types
topic = "py-subtypes"
shared = [client.subscribe(topic, "sh", consumer_type=ConsumerType.Shared, receiver_queue_size=5)
          for _ in range(2)]
ks = [client.subscribe(topic, "ks", consumer_type=ConsumerType.KeyShared, receiver_queue_size=5)
      for _ in range(2)]
fo = [client.subscribe(topic, "fo", consumer_type=ConsumerType.Failover) for _ in range(2)]
ex = client.subscribe(topic, "ex", consumer_type=ConsumerType.Exclusive)
try:
    client.subscribe(topic, "ex", consumer_type=ConsumerType.Exclusive)
    raise AssertionError("second exclusive consumer accepted")
except pulsar.ConsumerBusy:
    pass
p = client.create_producer(topic, batching_enabled=False)
for n in range(40):
    p.send(("s%d" % n).encode(), partition_key="key%d" % (n % 4))


def spread(consumers, n):
    got = [[] for _ in consumers]
    deadline = time.time() + 15
    while sum(map(len, got)) < n and time.time() < deadline:
        for i, c in enumerate(consumers):
            try:
                m = c.receive(timeout_millis=20)
            except pulsar.Timeout:
                continue
            c.acknowledge(m)
            got[i].append(m)
    return got


a, b = spread(shared, 40)
assert len(a) + len(b) == 40 and a and b, (len(a), len(b))
assert len({m.data() for m in a + b}) == 40
a, b = spread(ks, 40)
assert len(a) + len(b) == 40
keys_a, keys_b = {m.partition_key() for m in a}, {m.partition_key() for m in b}
assert not keys_a & keys_b, (keys_a, keys_b)
a, b = spread(fo, 40)
assert sorted([len(a), len(b)]) == [0, 40], (len(a), len(b))
assert len(drain(ex, 40)) == 40
check("subscription types")

# negative acks and ack timeout
topic = "py-redelivery"
nc = client.subscribe(topic, "n", consumer_type=ConsumerType.Shared,
                      negative_ack_redelivery_delay_ms=100)
tc = client.subscribe(topic, "t", consumer_type=ConsumerType.Shared,
                      unacked_messages_timeout_ms=10001)  # the C++ client's minimum
p = client.create_producer(topic)
p.send(b"x")
m = nc.receive(timeout_millis=TIMEOUT)
nc.negative_acknowledge(m)
m2 = nc.receive(timeout_millis=TIMEOUT)
assert m2.data() == b"x" and m2.redelivery_count() == 1, m2.redelivery_count()
nc.acknowledge(m2)
tc.receive(timeout_millis=TIMEOUT)  # not acknowledged
m3 = tc.receive(timeout_millis=25000)
assert m3.data() == b"x" and m3.redelivery_count() >= 1
tc.acknowledge(m3)
check("negative ack and ack timeout")

# cumulative ack, then a new consumer on the subscription sees nothing old
topic = "py-cumulative"
c = client.subscribe(topic, "c", initial_position=InitialPosition.Earliest)
p = client.create_producer(topic)
for n in range(10):
    p.send(b"%d" % n)
got = drain(c, 10, ack=False)
c.acknowledge_cumulative(got[-1])
c.close()
c = client.subscribe(topic, "c")
nothing_more(c)
check("cumulative ack")

# readers and seek
topic = "py-readers"
p = client.create_producer(topic)
ids = [p.send(b"r%d" % n) for n in range(10)]
r = client.create_reader(topic, MessageId.earliest)
assert [r.read_next(TIMEOUT).data() for _ in range(10)] == [b"r%d" % n for n in range(10)]
assert not r.has_message_available()
r2 = client.create_reader(topic, ids[4])
assert r2.read_next(TIMEOUT).data() == b"r5"
r3 = client.create_reader(topic, ids[4], start_message_id_inclusive=True)
assert r3.read_next(TIMEOUT).data() == b"r4"
r2.seek(MessageId.earliest)
assert r2.read_next(TIMEOUT).data() == b"r0"
c = client.subscribe(topic, "seek", initial_position=InitialPosition.Earliest)
drain(c, 10)
c.seek(ids[2])
time.sleep(0.3)
assert c.receive(timeout_millis=TIMEOUT).data() in (b"r2", b"r3")
check("readers and seek")

# partitioned topic
p = client.create_producer(partitioned, batching_enabled=True, batching_max_publish_delay_ms=10)
c = client.subscribe(partitioned, "s", consumer_type=ConsumerType.Shared,
                     initial_position=InitialPosition.Earliest)
for n in range(60):
    p.send_async(b"p%d" % n, None, partition_key="k%d" % n)
p.flush()
got = {m.data() for m in drain(c, 60)}
assert len(got) == 60
assert len(client.get_topic_partitions(partitioned)) == 3
check("partitioned topic")

# deduplication (the broker runs with it): a re-created producer resumes after its last sequence
topic = "py-dedup"
p = client.create_producer(topic, producer_name="dd", batching_enabled=False)
for n in range(5):
    p.send(b"d%d" % n, sequence_id=n)
p.close()
p = client.create_producer(topic, producer_name="dd", batching_enabled=False)
assert p.last_sequence_id() == 4, p.last_sequence_id()
p.send(b"dup", sequence_id=3)
p.send(b"d5", sequence_id=5)
c = client.subscribe(topic, "s", initial_position=InitialPosition.Earliest)
assert [m.data() for m in drain(c, 6)] == [b"d0", b"d1", b"d2", b"d3", b"d4", b"d5"]
nothing_more(c)
check("deduplication")

# chunking passes through
topic = "py-chunks"
c = client.subscribe(topic, "s", initial_position=InitialPosition.Earliest)
p = client.create_producer(topic, batching_enabled=False, chunking_enabled=True)
big = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # above the 5 MiB maxMessageSize
p.send(big)
m = c.receive(timeout_millis=TIMEOUT)
assert m.data() == big
c.acknowledge(m)
check("chunked message")

client.close()
print("all ok")
