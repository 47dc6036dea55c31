// Transactions with the official Java client, for the interoperability tests of this client's
// transactions (tests/tests/transactions.rs). Prints one line per message received: "msg <payload>".
//
//   java -cp "<classes>:<pulsar jars>/*" TxnInterop produce SERVICE_URL TOPIC PREFIX
//       commits 5 messages PREFIX-commit-<i>, aborts 3 messages PREFIX-abort-<i> (in that order,
//       the aborted transaction opened before the committed one ends), then sends PREFIX-end plainly
//   java -cp ... TxnInterop consume SERVICE_URL TOPIC SUBSCRIPTION QUIET_MS
//       receives (from the earliest message) until QUIET_MS pass without a message, acknowledging
//       each one in a transaction that commits at the end
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.transaction.Transaction;

public class TxnInterop {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String url = args[1];
        String topic = args[2];
        try (PulsarClient client = PulsarClient.builder().serviceUrl(url).enableTransaction(true)
                .operationTimeout(30, TimeUnit.SECONDS).build()) {
            if (mode.equals("produce")) {
                produce(client, topic, args[3]);
            } else {
                consume(client, topic, args[3], Long.parseLong(args[4]));
            }
        }
    }

    static void produce(PulsarClient client, String topic, String prefix) throws Exception {
        try (Producer<String> p = client.newProducer(Schema.STRING).topic(topic)
                .sendTimeout(0, TimeUnit.SECONDS).create()) {
            Transaction commit = client.newTransaction().withTransactionTimeout(1, TimeUnit.MINUTES)
                    .build().get();
            Transaction abort = client.newTransaction().withTransactionTimeout(1, TimeUnit.MINUTES)
                    .build().get();
            for (int i = 0; i < 5; i++) {
                p.newMessage(commit).value(prefix + "-commit-" + i).send();
                if (i < 3) {
                    p.newMessage(abort).value(prefix + "-abort-" + i).send();
                }
            }
            abort.abort().get();
            commit.commit().get();
            p.send(prefix + "-end");
            System.out.println("done");
        }
    }

    static void consume(PulsarClient client, String topic, String sub, long quietMs) throws Exception {
        try (Consumer<byte[]> c = client.newConsumer().topic(topic).subscriptionName(sub)
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe()) {
            Transaction txn = client.newTransaction().withTransactionTimeout(1, TimeUnit.MINUTES)
                    .build().get();
            List<String> got = new ArrayList<>();
            while (true) {
                Message<byte[]> m = c.receive((int) quietMs, TimeUnit.MILLISECONDS);
                if (m == null) {
                    break;
                }
                c.acknowledgeAsync(m.getMessageId(), txn).get();
                got.add(new String(m.getValue(), StandardCharsets.UTF_8));
            }
            txn.commit().get();
            for (String s : got) {
                System.out.println("msg " + s);
            }
            System.out.flush();
        }
    }
}
