# kpipe quick start: two interceptors, a WASM value serializer and a WASM
# partitioner around a Kafka producer.
#
#   make plugins        # builds build/plugins/*.wasm
#   kpipe validate --config examples/quickstart.hcl
#   kpipe run --config examples/quickstart.hcl --input examples/quickstart.jsonl
#
# With no brokers here nor on the command line (--brokers), kpipe starts an
# embedded in-memory broker and says so. Set KAFKA_BROKERS to use a real one.

kafka {
  brokers   = env("KAFKA_BROKERS", "")
  client_id = "kpipe-quickstart"
  acks      = "all"
  linger    = "5ms"
}

pipeline "orders" {
  topic = "orders"

  # Stamps every record with where it came from and a sequence number.
  # Module paths are relative to this file, not to the working directory.
  interceptor "stamp" {
    module = "../build/plugins/headerstamp.wasm"
    config = {
      headers         = { source = "kpipe-quickstart", host = env("HOSTNAME", "unknown") }
      sequence_header = "kpipe-seq"
    }
  }

  # Masks card numbers, and filters out records without a customer.
  interceptor "redact" {
    module = "../build/plugins/redact.wasm"
    config = {
      fields          = ["card.number", "card.cvv"]
      drop_if_missing = "customer"
    }
    # Limits: at most 64MiB of memory per instance, two instances at once.
    memory_limit = "64MiB"
    pool_size    = 2
  }

  key_serializer { builtin = "string" }

  # Confluent wire format: magic byte 0, schema id 42, then the JSON.
  value_serializer {
    module = "../build/plugins/schemaprefix.wasm"
    config = { schema_id = 42 }
  }

  # Keys name a region: eu-* to partition 0, us-* to 1, apac-* to 2. Other
  # keys go to the default partitioner. (The partitioner sees the serialized
  # record, so it routes on the key, not on the framed JSON value.)
  partitioner {
    module = "../build/plugins/route.wasm"
    config = {
      key_prefix_routes = { "eu-" = 0, "us-" = 1, "apac-" = 2 }
    }
  }

  circuit_breaker {
    threshold = 5
    cooldown  = "10s"
  }
}
