package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// connectorFileHint explains a frequent mistake: `iotgw check -c modbus.json`, a connector
// file given where the main file belongs. It returns "" unless path is a JSON object with
// neither "thingsboard" nor "connectors"; then it names the main files beside it whose
// connectors[N].configuration refers to it.
func connectorFileHint(path string) string {
	top := readJSONObject(path)
	if top == nil {
		return ""
	}
	if _, ok := top["thingsboard"]; ok {
		return ""
	}
	if _, ok := top["connectors"]; ok {
		return ""
	}
	base := filepath.Base(path)
	hint := fmt.Sprintf("%s looks like a connector file, not a main config: check the main file (tb_gateway.json) that names it in connectors[N].configuration", base)
	others, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.json"))
	for _, other := range others {
		if other == path {
			continue
		}
		var main struct {
			ThingsBoard json.RawMessage `json:"thingsboard"`
			Connectors  []struct {
				Configuration string `json:"configuration"`
			} `json:"connectors"`
		}
		raw, err := os.ReadFile(other)
		if err != nil || json.Unmarshal(raw, &main) != nil || main.ThingsBoard == nil {
			continue
		}
		for i, c := range main.Connectors {
			if c.Configuration == base || filepath.Clean(c.Configuration) == base {
				hint += fmt.Sprintf("\n  %s: connectors[%d].configuration refers to it: iotgw check -c %s", filepath.Base(other), i, other)
			}
		}
	}
	return hint
}

func readJSONObject(path string) map[string]json.RawMessage {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}
