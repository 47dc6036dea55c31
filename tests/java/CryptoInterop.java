// The official Java client's side of tests/tests/crypto_interop.rs: produces encrypted messages
// and consumes (decrypts) them with DefaultCryptoKeyReader on PEM files, printing each payload it
// read as "OUT <payload>" (the client logs to stdout too).
//
//   CryptoInterop produce <url> <topic> <key-name> <public.pem> <count> <batch|single> <NONE|LZ4|ZLIB|ZSTD|SNAPPY> [chunk]
//   CryptoInterop consume <url> <topic> <private.pem> <count>
//
// Payloads are "java-<i>" (with "chunk": "java-<i>-" followed by 2 MiB of 'x', so that the
// 1 MiB chunks below split it).

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import org.apache.pulsar.client.api.CompressionType;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.ConsumerCryptoFailureAction;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.ProducerBuilder;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.impl.DefaultCryptoKeyReader;

public class CryptoInterop {
    public static void main(String[] args) throws Exception {
        String url = args[1], topic = args[2];
        try (PulsarClient client = PulsarClient.builder().serviceUrl(url).build()) {
            if (args[0].equals("produce")) {
                produce(client, topic, args);
            } else {
                consume(client, topic, args[3], Integer.parseInt(args[4]));
            }
        }
    }

    static void produce(PulsarClient client, String topic, String[] args) throws Exception {
        String keyName = args[3], publicKey = args[4];
        int count = Integer.parseInt(args[5]);
        boolean batch = args[6].equals("batch");
        boolean chunk = args.length > 8 && args[8].equals("chunk");
        ProducerBuilder<byte[]> b = client.newProducer()
                .topic(topic)
                .addEncryptionKey(keyName)
                .cryptoKeyReader(DefaultCryptoKeyReader.builder()
                        .defaultPublicKey("file://" + publicKey).build())
                .compressionType(CompressionType.valueOf(args[7]))
                .enableBatching(batch && !chunk);
        if (batch && !chunk) {
            b = b.batchingMaxMessages(count).batchingMaxPublishDelay(1, TimeUnit.SECONDS);
        }
        if (chunk) {
            b = b.enableChunking(true).chunkMaxMessageSize(1024 * 1024);
        }
        try (Producer<byte[]> p = b.create()) {
            for (int i = 0; i < count; i++) {
                String body = "java-" + i;
                if (chunk) {
                    body = body + "-" + "x".repeat(2 * 1024 * 1024);
                }
                p.sendAsync(body.getBytes(StandardCharsets.UTF_8));
            }
            p.flush();
        }
    }

    static void consume(PulsarClient client, String topic, String privateKey, int count) throws Exception {
        try (Consumer<byte[]> c = client.newConsumer()
                .topic(topic)
                .subscriptionName("java")
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .cryptoKeyReader(DefaultCryptoKeyReader.builder()
                        .defaultPrivateKey("file://" + privateKey).build())
                .cryptoFailureAction(ConsumerCryptoFailureAction.FAIL)
                .subscribe()) {
            for (int i = 0; i < count; i++) {
                Message<byte[]> m = c.receive(30, TimeUnit.SECONDS);
                if (m == null) {
                    throw new IllegalStateException("no message " + i);
                }
                String body = new String(m.getValue(), StandardCharsets.UTF_8);
                if (body.length() > 64) {
                    body = body.substring(0, 64) + "...(" + body.length() + ")";
                }
                System.out.println("OUT " + body);
                c.acknowledge(m);
            }
        }
    }
}
