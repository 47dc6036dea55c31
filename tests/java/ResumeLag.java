// Produces numbered messages with the official Java client until its standard input closes, and
// prints one line per receipt: "receipt <n> <unix time in ms>". The cluster tests run it beside this
// client's producer through a broker kill, to compare how soon each resumes on the surviving broker.
//
//   java -cp "<classes>:<pulsar jars>/*" ResumeLag SERVICE_URL TOPIC INTERVAL_MS [TOKEN_FILE]
import java.io.InputStream;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.nio.file.Files;
import java.nio.file.Paths;
import org.apache.pulsar.client.api.AuthenticationFactory;
import org.apache.pulsar.client.api.ClientBuilder;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Schema;

public class ResumeLag {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        String topic = args[1];
        long intervalMs = Long.parseLong(args[2]);
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdinWatch = new Thread(() -> {
            try {
                InputStream in = System.in;
                while (in.read() >= 0) {
                    // a line of input changes nothing; end of input stops the producer
                }
            } catch (Exception e) {
                // treated as end of input
            }
            stop.set(true);
        });
        stdinWatch.setDaemon(true);
        stdinWatch.start();

        AtomicLong failed = new AtomicLong();
        ClientBuilder builder = PulsarClient.builder().serviceUrl(url)
                .operationTimeout(60, TimeUnit.SECONDS);
        if (args.length > 3) {
            String token = new String(Files.readAllBytes(Paths.get(args[3]))).trim();
            builder = builder.authentication(AuthenticationFactory.token(token));
        }
        try (PulsarClient client = builder.build();
             Producer<String> producer = client.newProducer(Schema.STRING).topic(topic)
                .sendTimeout(0, TimeUnit.SECONDS).blockIfQueueFull(true).enableBatching(false).create()) {
            System.out.println("ready");
            System.out.flush();
            long n = 0;
            long next = System.nanoTime();
            while (!stop.get()) {
                final long number = n;
                producer.sendAsync("java-" + number).whenComplete((id, error) -> {
                    if (error != null) {
                        failed.incrementAndGet();
                        System.out.println("failed " + number + " " + error);
                    } else {
                        System.out.println("receipt " + number + " " + System.currentTimeMillis());
                    }
                });
                n++;
                next += intervalMs * 1_000_000L;
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
                }
            }
            producer.flush();
            System.out.println("done sent=" + n + " failed=" + failed.get());
        }
    }
}
