// Tombstones with the official Java client. Sends, for key "java", a value and then a null value
// (batched and not, on TO_RUST); then reads FROM_RUST from the start and prints one line per
// message, "RESULT <key>=<value or null>"; then opens a TableView of FROM_RUST and prints
// "TABLE <key>=<value>" for each entry.
//
//   java -cp "<classes>:<pulsar jars>/*" TombstoneInterop SERVICE_URL TO_RUST FROM_RUST COUNT
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Reader;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.TableView;

public class TombstoneInterop {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        String toRust = args[1];
        String fromRust = args[2];
        int count = Integer.parseInt(args[3]);
        try (PulsarClient client = PulsarClient.builder().serviceUrl(url)
                .operationTimeout(60, TimeUnit.SECONDS).build()) {
            for (boolean batched : new boolean[] {false, true}) {
                try (Producer<byte[]> producer = client.newProducer(Schema.BYTES).topic(toRust)
                        .enableBatching(batched).create()) {
                    String key = "java-" + batched;
                    producer.newMessage().key(key).value("java-value".getBytes()).sendAsync();
                    producer.newMessage().key(key).value(null).sendAsync();
                    producer.flush();
                }
            }
            try (Reader<byte[]> reader = client.newReader(Schema.BYTES).topic(fromRust)
                    .startMessageId(MessageId.earliest).create()) {
                for (int i = 0; i < count; i++) {
                    Message<byte[]> m = reader.readNext(15, TimeUnit.SECONDS);
                    if (m == null) {
                        throw new IllegalStateException("no message " + i);
                    }
                    byte[] v = m.getValue();
                    System.out.println("RESULT " + m.getKey() + "=" + (v == null ? "null" : new String(v)));
                }
            }
            try (TableView<byte[]> table = client.newTableView(Schema.BYTES).topic(fromRust).create()) {
                Map<String, String> sorted = new TreeMap<>();
                table.forEach((k, v) -> sorted.put(k, new String(v)));
                for (Map.Entry<String, String> e : sorted.entrySet()) {
                    System.out.println("TABLE " + e.getKey() + "=" + e.getValue());
                }
            }
        }
    }
}
