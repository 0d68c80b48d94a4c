// Package topicname holds Kafka's rule for topic names, the one place kpipe
// checks it: the gateway for the topics its clients produce to, and the
// kpipe command for the topics named on its command line.
package topicname

import (
	"errors"
	"fmt"
)

// MaxLen is the longest topic name Kafka accepts.
const MaxLen = 249

// Check returns what is wrong with name as a Kafka topic name, as a broker
// would refuse it, or nil: a name is 1 to MaxLen ASCII letters, digits, '.',
// '_' and '-', and is neither "." nor "..".
func Check(name string) error {
	switch {
	case name == "":
		return errors.New("the topic name is empty")
	case len(name) > MaxLen:
		return fmt.Errorf("the topic name is %d bytes long, more than %d", len(name), MaxLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a topic name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has a character other than ASCII letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}
