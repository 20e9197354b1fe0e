package dynamostore

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes a Store's counters (Stats) as Prometheus metrics, read
// at scrape time: the worker registers it beside its own.
type Collector struct{ s *Store }

// NewCollector returns the Collector of s.
func NewCollector(s *Store) Collector { return Collector{s} }

var dynamoDescs = struct{ batchCalls, itemsPut, itemsDeleted, unprocessed, throttled, unchanged *prometheus.Desc }{
	batchCalls:   prometheus.NewDesc("sixpotify_dynamodb_batch_write_calls_total", "BatchWriteItem calls.", nil, nil),
	itemsPut:     prometheus.NewDesc("sixpotify_dynamodb_items_put_total", "Track rows written.", nil, nil),
	itemsDeleted: prometheus.NewDesc("sixpotify_dynamodb_items_deleted_total", "Track rows deleted because they left the top list.", nil, nil),
	unprocessed:  prometheus.NewDesc("sixpotify_dynamodb_unprocessed_items_total", "Items DynamoDB handed back as UnprocessedItems (then retried).", nil, nil),
	throttled:    prometheus.NewDesc("sixpotify_dynamodb_throttled_total", "Throttling errors from DynamoDB (then retried).", nil, nil),
	unchanged:    prometheus.NewDesc("sixpotify_dynamodb_unchanged_saves_total", "Saves whose answer equalled the stored one: only fetched_at written.", nil, nil),
}

// Describe sends the metrics' descriptions.
func (Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dynamoDescs.batchCalls, dynamoDescs.itemsPut, dynamoDescs.itemsDeleted,
		dynamoDescs.unprocessed, dynamoDescs.throttled, dynamoDescs.unchanged} {
		ch <- d
	}
}

// Collect sends the counters as they are now.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for d, v := range map[*prometheus.Desc]int64{
		dynamoDescs.batchCalls: st.BatchWriteCalls, dynamoDescs.itemsPut: st.ItemsPut, dynamoDescs.itemsDeleted: st.ItemsDeleted,
		dynamoDescs.unprocessed: st.Unprocessed, dynamoDescs.throttled: st.Throttled, dynamoDescs.unchanged: st.Unchanged,
	} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
}
