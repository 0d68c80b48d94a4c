// Command tiny is the smallest Go reactor module: plugintest's own tests
// build it to check GoPlugin.
package main

//go:wasmexport answer
func answer() int32 { return 42 }

func main() {}
