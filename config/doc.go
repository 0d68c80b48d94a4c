// Package config loads kpipe pipelines from HCL files.
//
// A configuration file has at most one kafka block, with the settings of the
// producer client, and one or more pipeline blocks, each naming a default
// topic and the plugins that run around the producer:
//
//	kafka {
//	  brokers = ["127.0.0.1:9092"]
//	  acks    = "all"
//	  linger  = "5ms"
//	}
//
//	pipeline "orders" {
//	  topic = "orders"
//
//	  interceptor "stamp" {
//	    module = "plugins/headerstamp.wasm"   # relative to this file
//	    config = { headers = { origin = env("HOSTNAME", "unknown") } }
//	    timeout = "200ms"
//	  }
//
//	  circuit_breaker {
//	    threshold = 5
//	    cooldown  = "10s"
//	  }
//
//	  value_serializer { builtin = "json" }
//	  partitioner      { module = "plugins/route.wasm" }
//	}
//
// Load and Parse check everything that can be checked without running a
// plugin, and report every problem at once as hcl.Diagnostics that carry the
// file, line and column of the offending text; WriteDiagnostics prints them
// one per line as FILE:LINE:COL: message. (*Config).CheckModules goes one step
// further and loads every WASM module to check that it implements the kind it
// is used as. Build turns one pipeline into the options of pipeline.New;
// LoadChain loads only its plugins, for pipeline.Producer.Swap (Chain.Options)
// or to be closed again if the swap is not made (Chain.Close).
//
// Parse hashes every module file (Plugin.ModuleSHA256) and checks it against
// the block's sha256 pin, if any; loading a module reads the file once and
// refuses it if its hash is no longer the one Parse saw, so that a module
// replaced between the two steps never runs unchecked.
//
// A consumer block holds the consume-side plugins (deserializers and consume
// interceptors) that kpipe consume --config runs; LoadConsumer loads them
// for pipeline.NewConsumer (ConsumerChain.Options).
//
// The full language is described in docs/config.md.
package config
