package golden

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string
	re   *regexp.Regexp
}

type sample struct {
	Period  time.Duration
	Skip    int
	Re      *regexp.Regexp
	Inner   *inner
	Self    *sample
	Tags    map[string]int
	Fn      func()
	private string
}

func TestDump(t *testing.T) {
	s := &sample{Period: 1500 * time.Millisecond, Re: regexp.MustCompile("a+"), Inner: &inner{Name: "x"},
		Tags: map[string]int{"b": 2, "a": 1}, Fn: func() {}, private: "hidden"}
	s.Self = s
	got := string(Dump(s))
	want := `{
  Period: 1.5s
  Re: "a+"
  Inner: {
    Name: "x"
  }
  Self: <cycle>
  Tags: {
    a: 1
    b: 2
  }
}
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestApply(t *testing.T) {
	text := "# x\n<!-- fields:begin -->\nold\n<!-- fields:end -->\ntail\n"
	if _, stale, err := apply(text, map[string]string{"fields": "old"}); err != nil || stale != nil {
		t.Errorf("current block: stale %v, err %v", stale, err)
	}
	out, stale, err := apply(text, map[string]string{"fields": "new"})
	if err != nil || len(stale) != 1 || out != "# x\n<!-- fields:begin -->\nnew\n<!-- fields:end -->\ntail\n" {
		t.Errorf("stale block: %q %v %v", out, stale, err)
	}
	if _, _, err := apply(text, map[string]string{"sample": "x"}); err == nil || !strings.Contains(err.Error(), "<!-- sample:begin -->") {
		t.Errorf("missing markers: %v", err)
	}
}
