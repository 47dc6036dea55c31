// The Java client's side of `pulsar-scale` (issue 21's scale goal): the same three runs as
// benches/src/bin/pulsar-scale.rs, with the official Java client, printing one JSON line with the
// same fields, so that the two can be compared run for run on one broker.
//
//   javac -cp "$LIB/*" -d target/java-scale benches/java/ScalePeer.java
//   java -Xmx4g -cp "target/java-scale:$LIB/*" ScalePeer --url pulsar://127.0.0.1:6650 --mode producers --count 10000
//
// LIB is the jar directory that `scripts/pulsar-broker fetch` resolves (the Java client and its
// dependencies); benches/bin/scale-compare runs both clients.
//
// Besides the resident memory added (which, for a JVM, mostly says how far the heap grew), every
// run reports the live heap added, measured after a full collection before and after creation:
// the bytes the client really holds per resource.

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionType;

public final class ScalePeer {
    /** Resources created concurrently, as the Rust side does. */
    private static final int WAVE = 500;

    private String url = "pulsar://127.0.0.1:6650";
    private String mode = "producers";
    private int count = 1000;
    private int topics = 1;
    private int rounds = 5;
    private double idleS = 5.0;
    private String prefix = "scale-java-" + ProcessHandle.current().pid();

    /** CPU seconds, resident KiB, live heap bytes and the instant, at one point. */
    private static final class Point {
        final double cpuS;
        final long rssKib;
        final long heap;
        final long atNs;

        Point(boolean collect) {
            this.heap = collect ? liveHeap() : 0;
            this.cpuS = cpuSeconds();
            this.rssKib = rssKib();
            this.atNs = System.nanoTime();
        }
    }

    static double cpuSeconds() {
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        return os.getProcessCpuTime() / 1e9;
    }

    static long rssKib() {
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // Not on Linux: reported as 0.
        }
        return 0;
    }

    /** Heap in use after full collections (the collector's own CPU is outside the timed parts). */
    static long liveHeap() {
        for (int i = 0; i < 3; i++) {
            System.gc();
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    String topic(int i) {
        return "persistent://public/default/" + prefix + "-" + (i % topics);
    }

    double idleCpu() throws InterruptedException {
        double before = cpuSeconds();
        Thread.sleep((long) (idleS * 1000));
        return (cpuSeconds() - before) / Math.max(idleS, 1e-9);
    }

    static String created(Point before, Point after, int n) {
        double each = Math.max(n, 1);
        return String.format(Locale.ROOT,
                "{\"create_s\":%.6f,\"create_cpu_s\":%.6f,\"create_cpu_us_each\":%.3f,"
                        + "\"rss_added_kib\":%d,\"rss_bytes_each\":%.1f,\"heap_bytes_each\":%.1f}",
                (after.atNs - before.atNs) / 1e9, after.cpuS - before.cpuS,
                (after.cpuS - before.cpuS) * 1e6 / each, after.rssKib - before.rssKib,
                (after.rssKib - before.rssKib) * 1024.0 / each, (after.heap - before.heap) / each);
    }

    String producers(PulsarClient client) throws Exception {
        Point before = new Point(true);
        List<Producer<byte[]>> all = new ArrayList<>(count);
        while (all.size() < count) {
            int n = Math.min(count - all.size(), WAVE);
            List<CompletableFuture<Producer<byte[]>>> wave = new ArrayList<>(n);
            for (int k = 0; k < n; k++) {
                wave.add(client.newProducer().topic(topic(all.size() + k)).enableBatching(true)
                        .batchingMaxMessages(1000).batchingMaxBytes(128 * 1024)
                        .batchingMaxPublishDelay(1, TimeUnit.MILLISECONDS).createAsync());
            }
            for (CompletableFuture<Producer<byte[]>> f : wave) {
                all.add(f.get());
            }
        }
        Thread.sleep(500);
        Point after = new Point(true);
        double idle = idleCpu();
        byte[] payload = new byte[100];
        AtomicLong done = new AtomicLong();
        Point start = new Point(false);
        for (int r = 0; r < rounds; r++) {
            long target = done.get() + all.size();
            for (Producer<byte[]> p : all) {
                p.sendAsync(payload).thenRun(done::incrementAndGet);
            }
            while (done.get() < target) {
                Thread.sleep(1);
            }
        }
        Point end = new Point(false);
        double messages = (double) rounds * all.size();
        return String.format(Locale.ROOT,
                "{\"created\":%s,\"idle_cpu_per_s\":%.6f,\"messages\":%.0f,\"send_s\":%.6f,"
                        + "\"cpu_us_per_msg\":%.3f}",
                created(before, after, count), idle, messages, (end.atNs - start.atNs) / 1e9,
                (end.cpuS - start.cpuS) * 1e6 / Math.max(messages, 1));
    }

    String consumers(PulsarClient client) throws Exception {
        AtomicLong received = new AtomicLong();
        Point before = new Point(true);
        List<Consumer<byte[]>> all = new ArrayList<>(count);
        while (all.size() < count) {
            int n = Math.min(count - all.size(), WAVE);
            List<CompletableFuture<Consumer<byte[]>>> wave = new ArrayList<>(n);
            for (int k = 0; k < n; k++) {
                wave.add(client.newConsumer().topic(topic(all.size() + k)).subscriptionName("scale")
                        .subscriptionType(SubscriptionType.Shared)
                        .messageListener((c, m) -> {
                            c.acknowledgeAsync(m);
                            received.incrementAndGet();
                        })
                        .subscribeAsync());
            }
            for (CompletableFuture<Consumer<byte[]>> f : wave) {
                all.add(f.get());
            }
        }
        Thread.sleep(500);
        Point after = new Point(true);
        double idle = idleCpu();
        int senders = Math.min(topics, count);
        List<Producer<byte[]>> producers = new ArrayList<>(senders);
        for (int i = 0; i < senders; i++) {
            producers.add(client.newProducer().topic(topic(i)).create());
        }
        Point start = new Point(false);
        for (Producer<byte[]> p : producers) {
            p.send(new byte[100]);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (received.get() < senders && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        Point end = new Point(false);
        return String.format(Locale.ROOT,
                "{\"created\":%s,\"idle_cpu_per_s\":%.6f,\"messages\":%d,\"send_receive_s\":%.6f}",
                created(before, after, count), idle, received.get(), (end.atNs - start.atNs) / 1e9);
    }

    String pattern(PulsarClient client) throws Exception {
        long t0 = System.nanoTime();
        int made = 0;
        while (made < topics) {
            int n = Math.min(topics - made, WAVE);
            List<CompletableFuture<Producer<byte[]>>> wave = new ArrayList<>(n);
            for (int i = made; i < made + n; i++) {
                wave.add(client.newProducer().topic(topic(i)).createAsync());
            }
            for (CompletableFuture<Producer<byte[]>> f : wave) {
                f.get().close();
            }
            made += n;
        }
        double topicsS = (System.nanoTime() - t0) / 1e9;
        Thread.sleep(500);
        Point before = new Point(true);
        Consumer<byte[]> c = client.newConsumer()
                .topicsPattern(Pattern.compile("persistent://public/default/" + prefix + "-.*"))
                .subscriptionName("scale-pattern").subscribe();
        Thread.sleep(500);
        Point after = new Point(true);
        double idle = idleCpu();
        c.close();
        return String.format(Locale.ROOT,
                "{\"topics_created_s\":%.6f,\"created\":%s,\"idle_cpu_per_s\":%.6f}",
                topicsS, created(before, after, topics), idle);
    }

    public static void main(String[] args) throws Exception {
        ScalePeer a = new ScalePeer();
        for (int i = 0; i + 1 < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--url": a.url = v; break;
                case "--mode": a.mode = v; break;
                case "--count": a.count = Integer.parseInt(v); break;
                case "--topics": a.topics = Math.max(1, Integer.parseInt(v)); break;
                case "--rounds": a.rounds = Integer.parseInt(v); break;
                case "--idle-s": a.idleS = Double.parseDouble(v); break;
                case "--prefix": a.prefix = v; break;
                default:
                    System.err.println("ScalePeer: unknown argument " + args[i]);
                    System.exit(2);
            }
        }
        PulsarClient client = PulsarClient.builder().serviceUrl(a.url)
                .operationTimeout(120, TimeUnit.SECONDS).build();
        String result;
        switch (a.mode) {
            case "producers": result = a.producers(client); break;
            case "consumers": result = a.consumers(client); break;
            case "pattern": result = a.pattern(client); break;
            default:
                System.err.println("ScalePeer: unknown mode " + a.mode);
                System.exit(2);
                return;
        }
        client.close();
        System.out.println(String.format(Locale.ROOT,
                "{\"client\":\"java\",\"mode\":\"%s\",\"count\":%d,\"topics\":%d,\"result\":%s}",
                a.mode, a.count, a.topics, result));
        System.exit(0);
    }
}
