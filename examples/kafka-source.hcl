# A pipeline fed by Kafka (docs/kafka-source.md): it reads "orders" through the
# consumer group "orders-upper", upper-cases every value with a hand-written
# WebAssembly interceptor, and writes "orders-upper", committing the output and
# the consumed offsets in one transaction. Run as many of these as wanted:
#
#   kpipe run --config examples/kafka-source.hcl --admin 127.0.0.1:9464
#
# A value starting with "poison" makes the plugin trap; with on_failure = "fail"
# that record goes to "orders-upper-dead" with headers saying why.
kafka {
  brokers = env("KAFKA_BROKERS", "127.0.0.1:9092")
}

pipeline "orders-upper" {
  topic = "orders-upper"

  source "kafka" {
    topics           = ["orders"]
    group            = "orders-upper"
    delivery         = "exactly_once"
    transactional_id = "orders-upper-${env("HOSTNAME", "local")}-${env("KPIPE_INSTANCE", "0")}"
    dead_letter {
      topic = "orders-upper-dead"
    }
  }

  interceptor "upper" {
    module     = "plugins/wat/upper.wasm"
    on_failure = "fail"
  }
}
