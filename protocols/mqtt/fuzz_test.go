package mqtt

import (
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/jsonconv"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// FuzzParseRequests feeds arbitrary requestsMapping sections through the
// parser and the compiler: neither may panic, and every problem names the
// file.
func FuzzParseRequests(f *testing.F) {
	f.Add([]byte(`{"broker":{"host":"h"},"mapping":[],` + requestsMapping + `}`))
	f.Add([]byte(`{"broker":{"host":"h"},"mapping":[],"serverSideRpc":[{"methodFilter":"(","requestTopicExpression":"${x","valueExpression":1}]}`))
	f.Add([]byte(`{"broker":{"host":"h"},"requestsMapping":{"attributeRequests":[{"topicFilter":"#","retrieveType":"${s}","attributeNameTopicExpression":"a/(.*)","topicExpression":"t","valueExpression":"v"}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, _, err := ParseFile("mqtt.json", raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mqtt.json") {
				t.Fatalf("problem without the file name: %v", err)
			}
			return
		}
		c := &Connector{}
		_ = c.compileRequests(&cfg.Requests, jsonconv.Env{}, &spec.Problems{}, "mqtt.json")
	})
}

// topicMatchesRef is the spec's filter rule written the slow, obvious way.
func topicMatchesRef(filter, topic string) bool {
	filter = shareName(filter)
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return i == len(fl)-1
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func FuzzTopicMatches(f *testing.F) {
	f.Add("a/+/#", "a/b/c")
	f.Add("$share/g/#", "x")
	f.Add("a/#", "a")
	f.Add("+", "")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if validTopicFilter(filter) != nil || strings.ContainsAny(topic, "+#") {
			return
		}
		if got, want := topicMatches(filter, topic), topicMatchesRef(filter, topic); got != want {
			t.Fatalf("topicMatches(%q, %q) = %v, want %v", filter, topic, got, want)
		}
	})
}
