#!/usr/bin/env python3
"""The official Python client (pulsar-client, C++ core) running one benchmark workload.

    bench_client.py --spec '<json Spec>'   ->   prints "RESULT {json}"

The same specs and result fields as the Rust client binaries (see benches/src/spec.rs), so the
harness treats it alike. Its figures are bound by the Python binding (a callback per receipt, a
Python call per send and per receive), not by the C++ core alone.
"""
import json
import math
import struct
import sys
import threading
import time

import pulsar

BATCH_MAX_MESSAGES = 1000
BATCH_MAX_BYTES = 128 * 1024
BATCH_DELAY_MS = 1
MAX_PENDING = 10_000
RECEIVER_QUEUE = 1000
CUMULATIVE_EVERY = 1000
END = struct.pack("<Q", 2**64 - 1)


def vm_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Window:
    """Counts done messages; a monitor thread snapshots them after the warm-up and at the end."""

    def __init__(self):
        self.done = 0
        self.failed = 0
        self.stop = False
        self.figures = None

    def callback(self, res, _msg_id):
        if res == pulsar.Result.Ok:
            self.done += 1
        else:
            self.failed += 1

    def monitor(self, warmup, measure):
        def run():
            time.sleep(warmup)
            a = (time.perf_counter(), self.done, time.process_time())
            time.sleep(measure)
            b = (time.perf_counter(), self.done, time.process_time())
            self.stop = True
            self.figures = (b[1] - a[1], b[0] - a[0], b[2] - a[2])
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def summary(values_us):
    """p50/p99/p99.9/max like HdrHistogram's value_at_quantile (the value at rank ceil(q n))."""
    if not values_us:
        return {"p50_us": 0.0, "p99_us": 0.0, "p999_us": 0.0, "max_us": 0.0, "count": 0}
    v = sorted(values_us)
    at = lambda q: float(v[max(0, min(len(v) - 1, math.ceil(q * len(v)) - 1))])
    return {"p50_us": at(0.5), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": float(v[-1]),
            "count": len(v)}


def set_window(r, messages, seconds, cpu_s, size):
    r["window_messages"] = messages
    r["window_s"] = seconds
    r["window_cpu_s"] = cpu_s
    if seconds > 0:
        r["msg_per_s"] = messages / seconds
        r["mb_per_s"] = r["msg_per_s"] * size / 1e6
    if messages > 0:
        r["cpu_us_per_msg"] = cpu_s * 1e6 / messages


def producer(client, spec, batching=None):
    batching = spec["batching"] if batching is None else batching
    return client.create_producer(
        spec["topic"],
        batching_enabled=batching,
        batching_max_messages=BATCH_MAX_MESSAGES,
        batching_max_allowed_size_in_bytes=BATCH_MAX_BYTES,
        batching_max_publish_delay_ms=BATCH_DELAY_MS,
        max_pending_messages=MAX_PENDING,
        block_if_queue_full=True,
        compression_type=pulsar.CompressionType.NONE,
    )


def produce_max(client, spec, r):
    producers = [producer(client, spec) for _ in range(max(1, spec["producers"]))]
    payload = bytes(spec["payload_size"])
    w = Window()
    mon = w.monitor(spec["warmup_s"], spec["measure_s"])
    sent = 0
    cb = w.callback
    while not w.stop:
        for p in producers:
            p.send_async(payload, cb)
        sent += len(producers)
    mon.join()
    for p in producers:
        p.flush()
        p.close()
    set_window(r, *w.figures, spec["payload_size"])
    r["total_messages"] = sent
    r["failed"] = w.failed


def produce_paced(client, spec, r, e2e):
    lat, e2e_lat = [], []
    received = [0]
    consumer = None
    if e2e:
        consumer = client.subscribe(spec["topic"], spec["subscription"],
                                    receiver_queue_size=RECEIVER_QUEUE)
    p = producer(client, spec)
    rate, size = spec["rate"], spec["payload_size"]
    interval = 1e9 / rate
    start = time.perf_counter_ns()
    window_start = start + int(spec["warmup_s"] * 1e9)
    end = window_start + int(spec["measure_s"] * 1e9)
    done = {"ok": 0, "failed": 0}

    def receive():
        deadline = end / 1e9 + 30.0
        while True:
            left_ms = int((deadline - time.perf_counter_ns() / 1e9) * 1000)
            try:
                m = consumer.receive(timeout_millis=max(1, left_ms))
            except pulsar.Timeout:
                r["notes"].append("end-to-end: the end marker did not arrive")
                return
            now = time.perf_counter_ns()
            consumer.acknowledge(m)
            data = m.data()
            if data[8:16] == END:
                return
            at = struct.unpack_from("<Q", data)[0]
            if at >= window_start:
                e2e_lat.append(max(1, (now - at) // 1000))
            received[0] += 1

    rt = threading.Thread(target=receive, daemon=True) if e2e else None
    if rt:
        rt.start()
    fixed = bytes(size)
    i = 0
    in_window = 0
    last_send = start
    cpu_start = None
    while True:
        at = start + int(i * interval)
        if at >= end:
            break
        now = time.perf_counter_ns()
        if at > now:
            time.sleep((at - now) / 1e9)
        payload = struct.pack("<QQ", at, i) + bytes(max(0, size - 16)) if e2e else fixed

        def cb(res, _id, at=at):
            if res == pulsar.Result.Ok:
                done["ok"] += 1
                if at >= window_start:
                    lat.append(max(1, (time.perf_counter_ns() - at) // 1000))
            else:
                done["failed"] += 1

        if at >= window_start and cpu_start is None:
            cpu_start = time.process_time()
        p.send_async(payload, cb)
        if at >= window_start:
            in_window += 1
            last_send = time.perf_counter_ns()
        i += 1
    cpu_end = time.process_time()
    if e2e:
        p.send(struct.pack("<Q", time.perf_counter_ns()) + END + bytes(max(0, size - 16)))
    p.flush()
    span = (max(last_send, end) - window_start) / 1e9
    if cpu_start is not None:
        set_window(r, in_window, span, cpu_end - cpu_start, size)
    r["offered_rate"] = rate
    r["achieved_rate"] = in_window / span if span > 0 else 0.0
    r["total_messages"] = i
    r["failed"] = done["failed"]
    r["latency"] = summary(lat)
    if rt:
        rt.join(60)
        r["e2e"] = summary(e2e_lat)
        r["notes"].append("%d messages received" % received[0])
    p.close()


def consume(client, spec, r):
    c = client.subscribe(spec["topic"], spec["subscription"],
                         consumer_type=pulsar.ConsumerType.Exclusive,
                         receiver_queue_size=RECEIVER_QUEUE)
    expected = spec["messages"]
    lo, hi = expected // 10, expected - expected // 10
    deadline = time.perf_counter() + spec["time_limit_s"]
    cumulative = spec["ack"] == "cumulative"
    a = b = None
    n = 0
    while n < expected:
        left_ms = int((deadline - time.perf_counter()) * 1000)
        try:
            # Stops a stalled drain too (no message arrives before the limit).
            m = c.receive(timeout_millis=max(1, left_ms))
        except pulsar.Timeout:
            break
        n += 1
        if cumulative:
            if n % CUMULATIVE_EVERY == 0 or n == expected:
                c.acknowledge_cumulative(m)
        else:
            c.acknowledge(m)
        if n == lo:
            a = (time.perf_counter(), n, time.process_time())
        elif n == hi:
            b = (time.perf_counter(), n, time.process_time())
        if n % CUMULATIVE_EVERY == 0 and time.perf_counter() > deadline:
            break
    last = (time.perf_counter(), n, time.process_time())
    c.close()
    if a:
        b = b or last
        set_window(r, b[1] - a[1], b[0] - a[0], b[2] - a[2], spec["payload_size"])
    r["total_messages"] = n
    if n < expected:
        r["notes"].append("time limit: drained %d of %d messages" % (n, expected))


def idle(client, spec, r, producers):
    make = (lambda: producer(client, spec)) if producers else (
        lambda: client.subscribe(spec["topic"], spec["subscription"],
                                 consumer_type=pulsar.ConsumerType.Shared,
                                 receiver_queue_size=RECEIVER_QUEUE))
    keep = [make()]
    time.sleep(0.5)
    before = vm_kib("VmRSS")
    for _ in range(spec["count"]):
        keep.append(make())
    time.sleep(1.0)
    after = vm_kib("VmRSS")
    r["idle"] = {"count": spec["count"], "rss_before_kib": before, "rss_after_kib": after,
                 "bytes_per_item": (after - before) * 1024.0 / max(1, spec["count"])}
    for x in keep:
        x.close()


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--spec":
        print("usage: bench_client.py --spec JSON", file=sys.stderr)
        sys.exit(2)
    spec = json.loads(sys.argv[2])
    cpu0 = time.process_time()
    client = pulsar.Client(spec["url"], logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    r = {"notes": []}
    mode = spec["mode"]
    if mode == "produce" and spec["rate"] > 0:
        produce_paced(client, spec, r, False)
    elif mode == "produce":
        produce_max(client, spec, r)
    elif mode == "e2e":
        produce_paced(client, spec, r, True)
    elif mode == "consume":
        consume(client, spec, r)
    elif mode in ("idle_producers", "idle_consumers"):
        idle(client, spec, r, mode == "idle_producers")
    else:
        print("mode %s not supported" % mode, file=sys.stderr)
        sys.exit(2)
    client.close()
    r["total_cpu_s"] = time.process_time() - cpu0
    r["peak_rss_kib"] = vm_kib("VmHWM")
    print("RESULT " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
