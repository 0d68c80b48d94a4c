package gateway

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// metadataTimeout bounds the upstream metadata request behind a client's.
const metadataTimeout = 10 * time.Second

// metadata answers a Metadata request with the upstream cluster's topics
// and partition counts, and the gateway itself as the only broker, the
// controller, and the leader and only replica of every partition. Topics
// are created upstream as the request asks (allow_auto_topic_creation) and
// the upstream cluster allows.
//
// A name Kafka refuses as a topic is answered INVALID_TOPIC_EXCEPTION
// without asking upstream, with a warning naming the client: the upstream
// would be asked to create it.
func (g *Gateway) metadata(c *conn, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	ctx := c.ctx
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.ControllerID = g.nodeID
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = g.nodeID, g.host, g.port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}

	up := kmsg.NewPtrMetadataRequest()
	up.AllowAutoTopicCreation = req.AllowAutoTopicCreation
	if req.Version < 4 {
		up.AllowAutoTopicCreation = true // implied before v4
	}
	// Version 0 asks for every topic with an empty list, later versions
	// with a null one.
	var invalid []kmsg.MetadataResponseTopic
	if req.Topics != nil && !(req.Version == 0 && len(req.Topics) == 0) {
		up.Topics = make([]kmsg.MetadataRequestTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			if t.Topic == nil {
				continue // a topic by id only: the gateway names topics
			}
			if msg := topicError(*t.Topic); msg != "" {
				if len(invalid) == 0 { // one line for the request
					g.log.Warn("answered metadata for an invalid topic name with INVALID_TOPIC_EXCEPTION", "remote", c.st.remote, "client_id", c.clientID(), "error", msg)
				}
				rt := kmsg.NewMetadataResponseTopic()
				rt.Topic, rt.ErrorCode = t.Topic, codeInvalidTopic
				invalid = append(invalid, rt)
				continue
			}
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = t.Topic
			up.Topics = append(up.Topics, rt)
		}
	}
	resp.Topics = invalid
	if up.Topics != nil && len(up.Topics) == 0 && len(invalid) > 0 {
		// Every topic asked for is invalid: an empty list would ask
		// upstream for none, and the answer needs nothing of it.
		return resp
	}
	mctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	ur, err := up.RequestWith(mctx, g.upstream)
	if err != nil {
		g.log.Warn("upstream metadata request failed; clients are told LEADER_NOT_AVAILABLE", "remote", c.st.remote, "error", err)
		for _, t := range up.Topics {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = codeLeaderNotAvailable
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	resp.ClusterID = ur.ClusterID
	self := []int32{g.nodeID}
	for _, t := range ur.Topics {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic, rt.TopicID, rt.IsInternal, rt.ErrorCode = t.Topic, t.TopicID, t.IsInternal, t.ErrorCode
		rt.AuthorizedOperations = t.AuthorizedOperations
		for _, p := range t.Partitions {
			rp := kmsg.NewMetadataResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.LeaderEpoch = p.Partition, p.ErrorCode, p.LeaderEpoch
			rp.Leader, rp.Replicas, rp.ISR = g.nodeID, self, self
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// initProducerID gives an idempotent producer its id. A transactional
// producer gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which every client
// treats as fatal, instead of an id.
func (g *Gateway) initProducerID(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = codeTxnIDAuthorizationFailed
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = g.producers.newID()
	return resp
}

// findCoordinator answers that there is no coordinator: the gateway serves
// neither transactions (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) nor consumer
// groups (GROUP_AUTHORIZATION_FAILED); both errors are fatal to a client
// rather than retried forever.
func findCoordinator(req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	code, msg := codeGroupAuthorizationFailed, "kpipe gateway: consumer groups are not served; consume from the upstream cluster"
	if req.CoordinatorType == 1 {
		code, msg = codeTxnIDAuthorizationFailed, txnMessage
	}
	resp.NodeID, resp.Port = -1, -1
	resp.ErrorCode, resp.ErrorMessage = code, &msg
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = nil
	}
	for _, k := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port, c.ErrorCode, c.ErrorMessage = k, -1, -1, code, &msg
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp
}
