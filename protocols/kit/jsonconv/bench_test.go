package jsonconv

import (
	"fmt"
	"strings"
)

// benchMapping is the mqtt connector's benchmark mapping: ten typed values
// read by top-level key.
func benchMapping() string {
	var ts []string
	types := []string{"double", "int", "double", "bool", "int", "double", "int", "bool", "long", "float"}
	for i, typ := range types {
		ts = append(ts, fmt.Sprintf(`{"type":%q,"key":"k%d","value":"${v%d}"}`, typ, i, i))
	}
	return `{"topicFilter":"sensor/data","subscriptionQos":1,"converter":{"type":"json","deviceInfo":{"deviceNameExpression":"${serialNumber}",
		"deviceProfileExpressionSource":"message","deviceProfileExpression":"${sensorType}"},"timeseries":[` + strings.Join(ts, ",") + `]}}`
}
