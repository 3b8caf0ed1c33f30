package jsonconv

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
)

// scaler is a user converter: it reads {"dev":..., "<key>":n} and multiplies
// the keys named in its extensionConfig.
type scaler struct{ factors map[string]float64 }

func (s *scaler) Convert(topic string, payload []byte, now time.Time) ([]Converted, error) {
	var m map[string]float64
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	out := Converted{Device: topic[strings.LastIndexByte(topic, '/')+1:], Profile: "scaled", Ts: now.UnixMilli()}
	for _, k := range []string{"humidity", "temperature"} {
		if f, ok := s.factors[k]; ok {
			out.Telemetry = append(out.Telemetry, protocols.Datapoint{Key: k, Value: protocols.Float(m[k] * f)})
		}
	}
	return []Converted{out}, nil
}

func init() {
	RegisterConverter("CustomMqttUplinkConverter", func(cfg json.RawMessage) (Converter, error) {
		s := &scaler{}
		return s, json.Unmarshal(cfg, &s.factors)
	})
}

func TestCustomConverter(t *testing.T) {
	conv, err := NewConverter(mappingFrom(t, `{"topicFilter":"custom/sensors/+","converter":{"type":"custom","extension":"CustomMqttUplinkConverter","cached":true,"extensionConfig":{"temperature":2,"humidity":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := conv.Convert("custom/sensors/s1", []byte(`{"temperature":20.5,"humidity":30}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "s1/scaled@1700000000000 attr{} ts{humidity=60,temperature=41}"; render(got) != want {
		t.Fatalf("got %s, want %s", render(got), want)
	}
	if names := RegisteredConverters(); len(names) != 1 || names[0] != "CustomMqttUplinkConverter" {
		t.Fatalf("registered = %v", names)
	}
}

func TestCustomConverterErrors(t *testing.T) {
	m := mappingFrom(t, `{"topicFilter":"c","converter":{"type":"custom","extension":"Nope"}}`)
	if _, err := NewConverter(m); !errors.Is(err, ErrNoConverter) || err.Error() != `custom converter "Nope" is not built in (upstream's Python extensions do not run here)` {
		t.Fatalf("err = %v", err)
	}
	m = mappingFrom(t, `{"topicFilter":"c","converter":{"type":"custom","extension":"CustomMqttUplinkConverter","extensionConfig":{"temperature":"x"}}}`)
	if _, err := NewConverter(m); err == nil || !strings.HasPrefix(err.Error(), `mapping "c": custom converter "CustomMqttUplinkConverter": json: cannot unmarshal`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRegisterConverterPanics(t *testing.T) {
	ok := func(json.RawMessage) (Converter, error) { return nil, nil }
	for name, f := range map[string]func(){
		"empty":     func() { RegisterConverter("", ok) },
		"nil":       func() { RegisterConverter("x", nil) },
		"duplicate": func() { RegisterConverter("CustomMqttUplinkConverter", ok) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
