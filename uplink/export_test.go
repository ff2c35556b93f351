package uplink

// SetOnAck lets the external benchmarks (latency_test.go, package
// uplink_test so that it may use the sensor) see each PUBACK.
func SetOnAck(p *Publisher, fn func(seq uint64)) { p.onAck = fn }
