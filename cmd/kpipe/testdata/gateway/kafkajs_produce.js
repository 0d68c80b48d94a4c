// Sends keyed records with headers through a kpipe gateway with KafkaJS (a
// Kafka client written in JavaScript that shares no code with kpipe), for
// kpipe's end-to-end gateway test (cmd/kpipe/gateway_test.go). The test
// runs it with NODE_PATH pointing at a node_modules directory holding
// kafkajs (make gateway-clients installs it under build/npm-kafkajs).
//
// Usage: node kafkajs_produce.js BOOTSTRAP TOPIC COUNT none|gzip [idempotent]
//
// Record i has key "kafkajs-i", value "value-i" and header "i" = i, and
// goes to partition 0, in sends of 500 records with acks=all. It prints
// "sent COUNT" once every send was acknowledged.
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, countArg, codec, mode] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: "kpipe-gateway-test", brokers: [bootstrap], logLevel: logLevel.ERROR });
  const idempotent = mode === "idempotent";
  const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : 5, allowAutoTopicCreation: true });
  await producer.connect();
  try {
    for (let start = 0; start < count; start += 500) {
      const messages = [];
      for (let i = start; i < Math.min(start + 500, count); i++) {
        messages.push({ key: `kafkajs-${i}`, value: `value-${i}`, partition: 0, headers: { i: String(i) } });
      }
      await producer.send({
        topic,
        acks: -1,
        compression: codec === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
        messages,
      });
    }
    console.log(`sent ${count}`);
  } finally {
    await producer.disconnect();
  }
}

const timer = setTimeout(() => {
  console.error("kafkajs_produce: no result within 2 minutes");
  process.exit(2);
}, 120000);
main().then(
  () => clearTimeout(timer),
  (err) => {
    console.error("kafkajs_produce:", err);
    process.exit(1);
  },
);
