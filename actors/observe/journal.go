package observe

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/industryos/gateway/persistence"
)

// journalCollector reads Journal.Stats() at scrape time: one snapshot, so
// appended - acked - dropped == depth holds within a scrape (for a journal
// that started empty; a durable journal reopened with data adds what it held).
type journalCollector struct{ get func() persistence.Journal }

var (
	descJAppended = prometheus.NewDesc(Namespace+"_journal_appended_total", "Events committed to the journal since it was opened.", nil, nil)
	descJAcked    = prometheus.NewDesc(Namespace+"_journal_acked_total", "Events deleted from the journal after the platform acknowledged them.", nil, nil)
	descJDropped  = prometheus.NewDesc(Namespace+"_journal_dropped_total", "Events dropped by a journal bound, or refused, by cause (max_age, max_records, max_bytes, disk_full, corrupt).", []string{"cause"}, nil)
	descJDepth    = prometheus.NewDesc(Namespace+"_journal_depth_events", "Events held in the journal, not yet acknowledged.", nil, nil)
	descJBytes    = prometheus.NewDesc(Namespace+"_journal_depth_bytes", "Encoded bytes of the events held in the journal.", nil, nil)
	descJAge      = prometheus.NewDesc(Namespace+"_journal_oldest_age_seconds", "Age of the oldest held event (0 when empty).", nil, nil)
	descJDisk     = prometheus.NewDesc(Namespace+"_journal_disk_bytes", "On-disk size of the journal (0 for the memory journal).", nil, nil)
)

func (c *journalCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJAppended, descJAcked, descJDropped, descJDepth, descJBytes, descJAge, descJDisk} {
		ch <- d
	}
}

func (c *journalCollector) Collect(ch chan<- prometheus.Metric) {
	j := c.get()
	if j == nil {
		return
	}
	s := j.Stats()
	ch <- prometheus.MustNewConstMetric(descJAppended, prometheus.CounterValue, float64(s.Appended))
	ch <- prometheus.MustNewConstMetric(descJAcked, prometheus.CounterValue, float64(s.Acked))
	causes := make([]string, 0, len(s.DroppedByCause))
	for cause := range s.DroppedByCause {
		causes = append(causes, cause)
	}
	sort.Strings(causes)
	for _, cause := range causes {
		ch <- prometheus.MustNewConstMetric(descJDropped, prometheus.CounterValue, float64(s.DroppedByCause[cause]), cause)
	}
	ch <- prometheus.MustNewConstMetric(descJDepth, prometheus.GaugeValue, float64(s.Depth))
	ch <- prometheus.MustNewConstMetric(descJBytes, prometheus.GaugeValue, float64(s.DepthBytes))
	ch <- prometheus.MustNewConstMetric(descJAge, prometheus.GaugeValue, s.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(descJDisk, prometheus.GaugeValue, float64(s.DiskBytes))
}

// InstrumentJournal wraps j so every group commit is timed into
// iotgw_journal_commit_duration_seconds. It forwards Enforce. On a nil
// *Metrics it returns j unchanged.
func (m *Metrics) InstrumentJournal(j persistence.Journal) persistence.Journal {
	if m == nil || j == nil {
		return j
	}
	return &timedJournal{Journal: j, commit: m.commit}
}

type timedJournal struct {
	persistence.Journal
	commit prometheus.Observer
}

func (t *timedJournal) Append(data [][]byte) (uint64, uint64, error) {
	if len(data) == 0 {
		return t.Journal.Append(data)
	}
	start := time.Now()
	first, last, err := t.Journal.Append(data)
	t.commit.Observe(time.Since(start).Seconds())
	return first, last, err
}

// Enforce forwards to the wrapped journal when it bounds itself on a timer.
func (t *timedJournal) Enforce() error {
	if e, ok := t.Journal.(persistence.Enforcer); ok {
		return e.Enforce()
	}
	return nil
}

// Unwrap returns the wrapped journal.
func (t *timedJournal) Unwrap() persistence.Journal { return t.Journal }

var _ persistence.Enforcer = (*timedJournal)(nil)
