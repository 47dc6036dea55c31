// The official Java client's side of tests/tests/schema_interop.rs: produces and consumes with its
// schemas (JSON, Avro, KeyValue, primitives, Protobuf, Protobuf native, AUTO_CONSUME) and prints
// what it read as one JSON line per message, each starting "OUT " (the client logs to stdout too).
//
//   SchemaInterop definition <avro|json|protobuf>
//   SchemaInterop produce <url> <topic,...> <kind,...> <count>
//   SchemaInterop consume <url> <topic,...> <kind,...> <count>
//
// Kinds: json, avro, kv-inline, kv-separated, string, bool, int8, int16, int32, int64, float,
// double, instant, local-date-time, protobuf, protobuf-native, auto (consume only).

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.util.Base64;
import java.util.concurrent.TimeUnit;

import com.google.protobuf.Timestamp;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.schema.Field;
import org.apache.pulsar.client.api.schema.GenericRecord;
import org.apache.pulsar.common.schema.KeyValue;
import org.apache.pulsar.common.schema.KeyValueEncodingType;

public class SchemaInterop {
    public static void main(String[] args) throws Exception {
        if (args[0].equals("definition")) {
            System.out.println("OUT " + new String(schema(args[1]).getSchemaInfo().getSchema(), StandardCharsets.UTF_8));
            return;
        }
        // several topics and kinds at once (comma-separated, in pairs): one JVM start for all
        String url = args[1];
        String[] topics = args[2].split(","), kinds = args[3].split(",");
        int count = Integer.parseInt(args[4]);
        try (PulsarClient client = PulsarClient.builder().serviceUrl(url).build()) {
            for (int i = 0; i < topics.length; i++) {
                if (args[0].equals("produce")) {
                    produce(client, topics[i], kinds[i], count);
                } else {
                    consume(client, topics[i], kinds[i], count);
                }
            }
        }
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    static Schema schema(String kind) {
        switch (kind) {
            case "json": return Schema.JSON(User.class);
            case "avro": return Schema.AVRO(User.class);
            case "kv-inline": return Schema.KeyValue(Schema.STRING, Schema.AVRO(User.class), KeyValueEncodingType.INLINE);
            case "kv-separated": return Schema.KeyValue(Schema.STRING, Schema.AVRO(User.class), KeyValueEncodingType.SEPARATED);
            case "string": return Schema.STRING;
            case "bool": return Schema.BOOL;
            case "int8": return Schema.INT8;
            case "int16": return Schema.INT16;
            case "int32": return Schema.INT32;
            case "int64": return Schema.INT64;
            case "float": return Schema.FLOAT;
            case "double": return Schema.DOUBLE;
            case "instant": return Schema.INSTANT;
            case "local-date-time": return Schema.LOCAL_DATE_TIME;
            case "protobuf": return Schema.PROTOBUF(Timestamp.class);
            case "protobuf-native": return Schema.PROTOBUF_NATIVE(Timestamp.class);
            case "auto": return Schema.AUTO_CONSUME();
            default: throw new IllegalArgumentException(kind);
        }
    }

    /// The i-th value of a kind (the Rust side expects the same).
    static Object value(String kind, int i) {
        switch (kind) {
            case "json": case "avro": return new User(i, i % 2 == 0 ? "java-" + i : null);
            case "kv-inline": case "kv-separated": return new KeyValue<>("k" + i, new User(i, "v" + i));
            case "string": return "java-" + i;
            case "bool": return i % 2 == 0;
            case "int8": return (byte) (i - 3);
            case "int16": return (short) (i * 300);
            case "int32": return i * 100_000;
            case "int64": return (long) i << 40;
            case "float": return i + 0.5f;
            case "double": return i / 4.0;
            case "instant": return Instant.ofEpochSecond(1_700_000_000L + i, i * 7);
            case "local-date-time": return LocalDateTime.of(2024, 1, 1 + i, 12, 30, 0, i);
            case "protobuf": case "protobuf-native":
                return Timestamp.newBuilder().setSeconds(1000 + i).setNanos(i).build();
            default: throw new IllegalArgumentException(kind);
        }
    }

    @SuppressWarnings("unchecked")
    static void produce(PulsarClient client, String topic, String kind, int count) throws Exception {
        try (Producer<Object> p = client.newProducer((Schema<Object>) schema(kind)).topic(topic).create()) {
            for (int i = 0; i < count; i++) {
                p.send(value(kind, i));
            }
        }
    }

    @SuppressWarnings("unchecked")
    static void consume(PulsarClient client, String topic, String kind, int count) throws Exception {
        try (Consumer<Object> c = client.newConsumer((Schema<Object>) schema(kind)).topic(topic)
                .subscriptionName("java").subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .subscribe()) {
            for (int i = 0; i < count; i++) {
                Message<Object> m = c.receive(30, TimeUnit.SECONDS);
                if (m == null) {
                    throw new IllegalStateException("no message " + i);
                }
                System.out.println("OUT " + json(m.getValue()));
                c.acknowledge(m);
            }
        }
    }

    /// A value as JSON text: records as objects (fields in order), key-values as {"key","value"}.
    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof GenericRecord) {
            GenericRecord r = (GenericRecord) v;
            if (r.getSchemaType() != null && r.getSchemaType().isPrimitive()) {
                return json(r.getNativeObject());
            }
            if (r.getNativeObject() instanceof KeyValue) {
                return json(r.getNativeObject());
            }
            StringBuilder out = new StringBuilder("{");
            for (Field f : r.getFields()) {
                if (out.length() > 1) out.append(',');
                out.append(quote(f.getName())).append(':').append(json(r.getField(f)));
            }
            return out.append('}').toString();
        }
        if (v instanceof KeyValue) {
            KeyValue<?, ?> kv = (KeyValue<?, ?>) v;
            return "{\"key\":" + json(kv.getKey()) + ",\"value\":" + json(kv.getValue()) + "}";
        }
        if (v instanceof User) {
            User u = (User) v;
            return "{\"id\":" + u.id + ",\"name\":" + json(u.name) + "}";
        }
        if (v instanceof Timestamp) {
            Timestamp t = (Timestamp) v;
            return "{\"seconds\":" + t.getSeconds() + ",\"nanos\":" + t.getNanos() + "}";
        }
        if (v instanceof Instant) {
            Instant t = (Instant) v;
            return "{\"seconds\":" + t.getEpochSecond() + ",\"nanos\":" + t.getNano() + "}";
        }
        if (v instanceof LocalDateTime) {
            LocalDateTime t = (LocalDateTime) v;
            return "{\"epochDay\":" + t.toLocalDate().toEpochDay() + ",\"nanoOfDay\":" + t.toLocalTime().toNanoOfDay() + "}";
        }
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        if (v instanceof byte[]) return quote(Base64.getEncoder().encodeToString((byte[]) v));
        return quote(v.toString());
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}

/// The record both clients use: Avro-reflected by Java as
/// {"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}]}.
class User {
    public long id;
    public String name;

    public User() {
    }

    User(long id, String name) {
        this.id = id;
        this.name = name;
    }
}
