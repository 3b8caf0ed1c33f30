//go:build !custom || protocols.mqtt || protocols.rest || protocols.request || protocols.socket || protocols.can

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/script"
)

// cmdConvert runs a script converter against sample input and prints what
// it makes of it, so a script can be written and tried without a device
// (Telegraf's --test idea). Exit 1: the script does not load or failed.
func cmdConvert(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("convert", stderr)
	file := fs.String("script", "", "the Starlark script (required)")
	input := fs.String("input", "-", "the message: a file read as is (uplink) or a command as JSON (downlink); - is stdin")
	topic := fs.String("topic", "", "msg.topic: the MQTT topic, URL path, peer address or CAN id the message came from")
	cfgFile := fs.String("config", "", "a JSON file with the converter's extensionConfig (msg.config)")
	cfgJSON := fs.String("config-json", "", "the extensionConfig as JSON text (instead of --config)")
	down := fs.Bool("downlink", false, `run downlink(cmd): the input is {"device":..,"method":..,"params":..} (an RPC) or {"device":..,"values":{..}} (an attribute update)`)
	connector := fs.String("for", "mqtt", "with --downlink: the connector whose output keys downlink may return: mqtt, request, rest, socket or can")
	now := fs.Int64("now", 0, "msg.ts in Unix milliseconds (default: the current time)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "iotgw convert: --script is required (and no arguments besides the flags)")
		fs.Usage()
		return 2
	}
	var cfg json.RawMessage
	switch {
	case *cfgFile != "" && *cfgJSON != "":
		fmt.Fprintln(stderr, "iotgw convert: give --config or --config-json, not both")
		return 2
	case *cfgFile != "":
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			fmt.Fprintf(stderr, "iotgw convert: --config: %v\n", err)
			return 2
		}
		cfg = b
	case *cfgJSON != "":
		cfg = json.RawMessage(*cfgJSON)
	}
	in, err := readInput(*input)
	if err != nil {
		fmt.Fprintf(stderr, "iotgw convert: --input: %v\n", err)
		return 2
	}
	s, err := script.Load(*file, script.Options{Config: cfg, Print: func(file, msg string) {
		fmt.Fprintf(stderr, "%s: print: %s\n", file, msg)
	}})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ts := time.Now()
	if *now != 0 {
		ts = time.UnixMilli(*now)
	}
	if *down {
		keys, ok := downlinkKeys[*connector]
		if !ok {
			fmt.Fprintf(stderr, "iotgw convert: --for %q: want mqtt, request, rest, socket or can\n", *connector)
			return 2
		}
		return convertDownlink(s, in, keys, stdout, stderr)
	}
	res, err := s.Uplink(script.Message{Payload: in, Topic: *topic, Now: ts})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, r := range res {
		fmt.Fprintln(stdout, resultJSON(r))
	}
	if len(res) == 0 {
		fmt.Fprintln(stderr, "(uplink returned nothing)")
	}
	return 0
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// resultJSON is one result as a line of JSON, keys in a fixed order.
func resultJSON(r script.Result) string {
	b := []byte(`{"device":`)
	b = protocols.AppendJSONString(b, r.Device)
	b = append(b, `,"profile":`...)
	b = protocols.AppendJSONString(b, r.Profile)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.Ts, 10)
	for _, part := range []struct {
		name string
		dps  []protocols.Datapoint
	}{{"attributes", r.Attributes}, {"telemetry", r.Telemetry}} {
		b = append(b, `,"`+part.name+`":{`...)
		for i, d := range part.dps {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocols.AppendJSONString(b, d.Key)
			b = append(b, ':')
			b = d.Value.AppendJSON(b)
		}
		b = append(b, '}')
	}
	return string(append(b, '}'))
}

// downlinkKeys are the output keys each connector reads (--for).
var downlinkKeys = map[string]script.Keys{
	"mqtt": script.MessageKeys, "request": script.HTTPKeys, "rest": script.HTTPKeys,
	"socket": script.StreamKeys, "can": script.FrameKeys,
}

func convertDownlink(s *script.Script, in []byte, keys script.Keys, stdout, stderr io.Writer) int {
	var c struct {
		Device string                     `json:"device"`
		ID     int64                      `json:"id"`
		Method string                     `json:"method"`
		Params json.RawMessage            `json:"params"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(in, &c); err != nil {
		fmt.Fprintf(stderr, "iotgw convert: --input: not a command: %v\n", err)
		return 2
	}
	cmd := script.Command{Kind: script.KindRPC, Device: c.Device, ID: c.ID, Method: c.Method, Params: c.Params}
	if c.Method == "" {
		if c.Values == nil {
			fmt.Fprintln(stderr, `iotgw convert: --input: a command has "method" (an RPC) or "values" (an attribute update)`)
			return 2
		}
		cmd = script.Command{Kind: script.KindAttributes, Device: c.Device, Values: c.Values}
	}
	outs, err := s.DownlinkFor(cmd, keys)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, o := range outs {
		line := struct {
			Topic    string            `json:"topic,omitempty"`
			URL      string            `json:"url,omitempty"`
			Method   string            `json:"method,omitempty"`
			Headers  map[string]string `json:"headers,omitempty"`
			NodeID   *int64            `json:"nodeId,omitempty"`
			Extended bool              `json:"isExtendedId,omitempty"`
			FD       bool              `json:"isFd,omitempty"`
			BRS      bool              `json:"bitrateSwitch,omitempty"`
			Payload  string            `json:"payload"`
			Hex      string            `json:"payloadHex,omitempty"` // bytes for a socket or a CAN frame
			QoS      *int              `json:"qos,omitempty"`
			Retain   bool              `json:"retain,omitempty"`
			Reply    json.RawMessage   `json:"reply,omitempty"`
		}{Topic: o.Topic, URL: o.URL, Method: o.Method, Headers: o.Headers, Extended: o.Extended, FD: o.FD, BRS: o.BitSwitch,
			Payload: string(o.Payload), Retain: o.Retain, Reply: o.Reply}
		if o.QoS >= 0 {
			line.QoS = &o.QoS
		}
		if o.NodeID >= 0 {
			line.NodeID = &o.NodeID
		}
		if len(keys) == 0 || keys[0] == script.FrameKeys[0] {
			line.Hex = fmt.Sprintf("% x", o.Payload)
		}
		b, _ := json.Marshal(line)
		fmt.Fprintln(stdout, strings.TrimSpace(string(b)))
	}
	if len(outs) == 0 {
		fmt.Fprintln(stderr, "(downlink returned nothing)")
	}
	return 0
}
