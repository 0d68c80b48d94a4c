// GatewayProducer sends keyed records with headers through a kpipe gateway
// with the Java client's defaults (idempotence on, acks=all), for kpipe's
// end-to-end gateway test (cmd/kpipe/gateway_test.go). Compiled and run by
// that test against the kafka-clients jar scripts/kafka.sh fetches.
//
// Usage: GatewayProducer BOOTSTRAP TOPIC COUNT PARTITION COMPRESSION [transactional | sasl=MECHANISM:USER:PASSWORD]
//
// Record i has key "java-i", value "value-i" and header "i" = i, and goes to
// PARTITION. With "transactional" the producer has a transactional.id and
// only calls initTransactions, printing the exception it gets. With
// "sasl=..." it authenticates with SASL (SASL_PLAINTEXT) as USER.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class GatewayProducer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int count = Integer.parseInt(args[2]);
        int partition = Integer.parseInt(args[3]);
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args[4]);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        boolean txn = args.length > 5 && args[5].equals("transactional");
        if (args.length > 5 && args[5].startsWith("sasl=")) {
            String[] sasl = args[5].substring(5).split(":", 3);
            String module = sasl[0].equals("PLAIN")
                    ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                    : "org.apache.kafka.common.security.scram.ScramLoginModule";
            props.put("security.protocol", "SASL_PLAINTEXT");
            props.put("sasl.mechanism", sasl[0]);
            props.put("sasl.jaas.config", module + " required username=\"" + sasl[1] + "\" password=\"" + sasl[2] + "\";");
        }
        if (txn) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "kpipe-gateway-test");
        }
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
            if (txn) {
                try {
                    p.initTransactions();
                    System.out.println("no error");
                } catch (Exception e) {
                    System.out.println(e.getClass().getName() + ": " + e.getMessage());
                }
                return;
            }
            List<Future<RecordMetadata>> fs = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, partition,
                        ("java-" + i).getBytes(StandardCharsets.UTF_8),
                        ("value-" + i).getBytes(StandardCharsets.UTF_8));
                r.headers().add("i", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                fs.add(p.send(r));
            }
            p.flush();
            for (Future<RecordMetadata> f : fs) {
                f.get();
            }
            System.out.println("sent " + count);
        }
    }
}
