package cli

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kpipe/kpipe/internal/topicname"
)

// checkTopics returns a usage error naming flag if a topic of topics is not
// a name Kafka accepts (topicname.Check): a broker would refuse it, or, for
// a consumer, never answer with records of it.
func checkTopics(flag string, topics []string) error {
	for _, t := range topics {
		if err := topicname.Check(t); err != nil {
			return usageErrorf("%s: %v", flag, err)
		}
	}
	return nil
}

// durationFlag is a time.Duration flag that refuses what the flag cannot
// mean: a negative duration always, and zero unless zero has a meaning of its
// own (zeroMeans, shown in the help). A refused value is a flag error, which
// ends the command with ExitUsage before it does anything.
type durationFlag struct {
	d         *time.Duration
	zeroMeans string
}

// durationVar defines a duration flag that must be longer than zero.
func durationVar(fs *pflag.FlagSet, d *time.Duration, name string, value time.Duration, usage string) {
	*d = value
	fs.Var(&durationFlag{d: d}, name, usage)
}

// durationOrZeroVar defines a duration flag that must not be negative; zero
// means zeroMeans.
func durationOrZeroVar(fs *pflag.FlagSet, d *time.Duration, name string, value time.Duration, usage, zeroMeans string) {
	*d = value
	fs.Var(&durationFlag{d: d, zeroMeans: zeroMeans}, name, usage+" (0: "+zeroMeans+")")
}

func (f *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return errors.New("want a duration such as 250ms, 10s or 1m30s")
	case v < 0:
		return errors.New("must not be negative")
	case v == 0 && f.zeroMeans == "":
		return errors.New("must be longer than zero")
	}
	*f.d = v
	return nil
}

// String is the value for the help text; zero is "0", which the help does
// not show as a default.
func (f *durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return "0"
	}
	return f.d.String()
}

func (f *durationFlag) Type() string { return "duration" }

// intFlag is an int flag with a range; a value outside it is a flag error.
type intFlag struct {
	n      *int
	lo, hi int
}

// intRangeVar defines an int flag whose value must be in [lo, hi].
func intRangeVar(fs *pflag.FlagSet, n *int, name string, value, lo, hi int, usage string) {
	*n = value
	fs.Var(&intFlag{n: n, lo: lo, hi: hi}, name, usage)
}

func (f *intFlag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 0)
	if err != nil || v < int64(f.lo) || v > int64(f.hi) {
		return fmt.Errorf("want a whole number from %d to %d", f.lo, f.hi)
	}
	*f.n = int(v)
	return nil
}

func (f *intFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return strconv.Itoa(*f.n)
}

func (f *intFlag) Type() string { return "int" }

// checkAddrs returns a usage error if an address of flag is not HOST:PORT
// (or HOST alone, when portOptional) with a port from minPort to 65535.
// portOptional is for broker addresses, which also need a host: ":9092"
// would dial this machine by accident, and the configuration file refuses it.
func checkAddrs(flag string, addrs []string, portOptional bool, minPort int) error {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			if portOptional && !strings.Contains(strings.Trim(a, "[]"), ":") {
				continue // a host alone: the client uses Kafka's port
			}
			return usageErrorf("%s %q: want HOST:PORT", flag, a)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < minPort || n > 65535 || strings.ContainsAny(host, " \t") || (portOptional && host == "") {
			return usageErrorf("%s %q: want HOST:PORT with a port from %d to 65535", flag, a, minPort)
		}
	}
	return nil
}

// brokersFlag splits the value of a --brokers flag, s, and checks its
// addresses (checkAddrs). A value given but holding no address (",") is a
// usage error rather than no brokers, which would start an embedded broker.
func brokersFlag(s string) ([]string, error) {
	brokers := splitList(s)
	if len(brokers) == 0 {
		return nil, usageErrorf("--brokers %q: no broker address (want HOST:PORT[,HOST:PORT...])", s)
	}
	if err := checkAddrs("--brokers", brokers, true, 1); err != nil {
		return nil, err
	}
	return brokers, nil
}
