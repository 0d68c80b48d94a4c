package gateway

import "fmt"

// codeInvalidTopic is INVALID_TOPIC_EXCEPTION.
const codeInvalidTopic int16 = 17

// maxTopicLen is the longest topic name Kafka accepts.
const maxTopicLen = 249

// topicError says what is wrong with a topic name a client produced to, as
// a broker would refuse it, or "" if nothing is. A produce to such a name
// is answered INVALID_TOPIC_EXCEPTION without being counted: the gateway
// keeps statistics per topic, and names of any bytes would let one client
// grow them without bound and put control characters in the log and the
// stop summary.
func topicError(name string) string {
	switch {
	case name == "":
		return "kpipe gateway: the topic name is empty"
	case len(name) > maxTopicLen:
		return fmt.Sprintf("kpipe gateway: the topic name is %d bytes long, more than %d", len(name), maxTopicLen)
	case name == "." || name == "..":
		return fmt.Sprintf("kpipe gateway: %q is not a topic name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("kpipe gateway: topic name %q has a character other than ASCII letters, digits, '.', '_' and '-'", name)
		}
	}
	return ""
}
