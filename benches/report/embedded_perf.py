"""Producer throughput of the official Python client against a broker (BENCHMARKS.md, embedded broker).

Usage: embedded_perf.py SERVICE_URL MESSAGES
"""
import sys, time, pulsar
url, n = sys.argv[1], int(sys.argv[2])
c = pulsar.Client(url, log_conf_file_path=None)
p = c.create_producer("perf", batching_enabled=True, batching_max_messages=1000,
                      batching_max_publish_delay_ms=1, max_pending_messages=10000,
                      block_if_queue_full=True)
payload = b"x" * 100
t = time.time()
for i in range(n):
    p.send_async(payload, None)
p.flush()
dt = time.time() - t
print("sent %d x 100 B in %.2f s: %.0f msg/s" % (n, dt, n / dt))
c.close()
