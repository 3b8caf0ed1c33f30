package jsonconv

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/report"
)

func TestReportStrategies(t *testing.T) {
	m := mappingFrom(t, `{"topicFilter":"a","converter":{"deviceInfo":{"deviceNameExpression":"x"},"sendDataOnlyOnChange":true,
		"timeseries":[{"key":"t","value":"${t}","reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":5000}},{"key":"${k}","value":"${v}","reportStrategy":{"type":"DISABLED"}}]}}`)
	def, perKey := m.ReportStrategies()
	if def.Type != report.OnChange {
		t.Fatalf("def = %+v", def)
	}
	if len(perKey) != 1 || perKey["t"].Type != report.OnReportPeriod || perKey["t"].Period != 5*time.Second {
		t.Fatalf("perKey = %+v", perKey)
	}
	m = mappingFrom(t, `{"topicFilter":"a","converter":{"deviceInfo":{"deviceNameExpression":"x"},"sendDataOnlyOnChange":true,"reportStrategy":{"type":"ON_RECEIVED"}}}`)
	if def, _ := m.ReportStrategies(); def.Type != report.OnReceived {
		t.Fatalf("def = %+v", def)
	}
}

// TestTopicRegexTimeout: a pattern that backtracks without end costs one
// malformed message, reported as a timeout, not a stuck connector.
func TestTopicRegexTimeout(t *testing.T) {
	c := converterFrom(t, `{"topicFilter":"#","converter":{"type":"json","deviceInfo":{
		"deviceNameExpressionSource":"topic","deviceNameExpression":"(?=a)(a+)+$"},
		"timeseries":[{"type":"double","key":"t","value":"${t}"}]}}`)
	_, err := c.Convert(strings.Repeat("a", 40)+"b", []byte(`{"t":1}`), now)
	if !errors.Is(err, pyre.ErrTimeout) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
	if out, err := c.Convert("aaa", []byte(`{"t":1}`), now); err != nil || out[0].Device != "aaa" {
		t.Fatalf("after a timeout: %s %v", render(out), err)
	}
}
