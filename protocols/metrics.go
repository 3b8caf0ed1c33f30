package protocols

// Metric is one figure a connector keeps of its own, read when the
// metrics are scraped.
type Metric struct {
	// Name is the metric's name without the gateway's prefix, starting
	// with the connector type: "exec_restarts_total".
	Name, Help string
	Value      float64
	// Gauge marks a value that goes up and down; otherwise it is a
	// counter since the connector was built.
	Gauge bool
}

// MetricsSource is implemented by connectors with figures beyond what
// they report through the Sink (malformed, dropped), such as the exec
// connector's program restarts. The runtime exports each Metric as
// iotgw_<Name>{connector="<name>"}; a counter keeps counting across
// restarts of the connector (the runtime adds what earlier instances
// counted).
type MetricsSource interface {
	Metrics() []Metric
}
