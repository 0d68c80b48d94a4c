package gateway

import "github.com/kpipe/kpipe/internal/topicname"

// codeInvalidTopic is INVALID_TOPIC_EXCEPTION.
const codeInvalidTopic int16 = 17

// topicError says what is wrong with a topic name a client produced to, as
// a broker would refuse it (topicname.Check), or "" if nothing is. A produce
// to such a name is answered INVALID_TOPIC_EXCEPTION without being counted:
// the gateway keeps statistics per topic, and names of any bytes would let
// one client grow them without bound and put control characters in the log
// and the stop summary.
func topicError(name string) string {
	if err := topicname.Check(name); err != nil {
		return "kpipe gateway: " + err.Error()
	}
	return ""
}
