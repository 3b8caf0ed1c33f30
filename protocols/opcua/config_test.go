package opcua

import (
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

func TestSample(t *testing.T) {
	var ps spec.Problems
	c, err := Parse(&ps, Sample)
	if err != nil {
		t.Fatal(err)
	}
	if w := ps.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	s := c.Server
	if s.URL != "opc.tcp://localhost:4840/freeopcua/server/" || s.Timeout != 5*time.Second || !s.EnableSubscriptions {
		t.Errorf("server = %+v", s)
	}
	if s.Security != PolicyNone || s.Mode != ModeNone || s.Identity.Type != IdentityAnonymous {
		t.Errorf("security %q identity %+v", s.Security, s.Identity)
	}
	if len(c.Mapping) != 1 {
		t.Fatalf("mapping = %d", len(c.Mapping))
	}
	d := c.Mapping[0]
	if d.NodePattern.Kind != ExprAbsolute || d.Name.Source != SourceIdentifier || len(d.Name.Refs) != 1 || d.Name.Refs[0].Node.String() != "ns=2;s=SerialNumber" {
		t.Errorf("device = %+v", d)
	}
	if d.Profile.Text != "Device" || d.Profile.Source != SourceConstant {
		t.Errorf("profile = %+v", d.Profile)
	}
	if len(d.Attributes) != 2 || d.Attributes[0].Expr.Kind != ExprNodeID || d.Attributes[1].Expr != nil || d.Attributes[1].Value != "hall 3" {
		t.Errorf("attributes = %+v", d.Attributes)
	}
	ts := d.Timeseries
	if len(ts) != 3 || ts[0].Expr.Kind != ExprRelative || ts[0].TimestampLocation != TimestampSource ||
		ts[1].Expr.Kind != ExprAbsolute || ts[1].ReportStrategy.Type != "ON_CHANGE" || ts[2].TimestampLocation != TimestampGateway {
		t.Errorf("timeseries = %+v", ts)
	}
	if len(d.AttrUpdates) != 1 || d.AttrUpdates[0].Expr.Kind != ExprRelative {
		t.Errorf("attributes_updates = %+v", d.AttrUpdates)
	}
	if len(d.RPCMethods) != 1 || d.RPCMethods[0].Method != "multiply" || len(d.RPCMethods[0].Arguments) != 2 {
		t.Errorf("rpc_methods = %+v", d.RPCMethods)
	}
}

func TestDefaults(t *testing.T) {
	var ps spec.Problems
	c, err := Parse(&ps, []byte(`{"server":{"url":"opc.tcp://h:4840"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.SessionTimeout != 120*time.Second || s.PollPeriod != 5*time.Second || s.SubCheckPeriod != 100*time.Millisecond ||
		s.SubDataMaxBatchSize != 1000 || s.SubDataMinBatchCreationTime != 200*time.Millisecond || s.SubscriptionProcessBatchSize != 2000 ||
		s.ReconnectRetriesCount != 8 || s.ReconnectBackoffInitialDelay != time.Second || s.ReconnectBackoffFactor != 2 ||
		!s.EnableSubscriptions || s.Security != PolicyNone || s.Mode != ModeNone || s.Identity.Type != IdentityAnonymous {
		t.Errorf("defaults = %+v", s)
	}
}

func TestIdentity(t *testing.T) {
	var ps spec.Problems
	c, err := Parse(&ps, []byte(`{"server":{"url":"h:4840","security":"basic256sha256","identity":{
		"type":"cert.PEM","pathToCACert":"ca.pem","privateKey":"k.pem","cert":"c.pem","mode":"Sign"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.Security != PolicyBasic256Sha256 || s.Mode != ModeSign || s.Identity.Type != IdentityCertificates ||
		s.Identity.CACert != "ca.pem" || s.Identity.PrivateKey != "k.pem" || s.Identity.Cert != "c.pem" {
		t.Errorf("server = %+v", s)
	}
	c, err = Parse(&ps, []byte(`{"server":{"url":"h","identity":{"type":"basic","username":"u","password":"p"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if id := c.Server.Identity; id.Type != IdentityUsername || id.Username != "u" || id.Password != "p" {
		t.Errorf("identity = %+v", id)
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, json  string
		errs, warns []string
	}{
		{
			name: "bad node id in timeseries",
			json: `{"server":{"url":"h"},"mapping":[{"deviceNodePattern":"Root\\.Objects\\.D","deviceInfo":{"deviceNameExpression":"D"},
				"timeseries":[{"key":"a","value":"${A}"},{"key":"b","value":"${B}"},{"key":"c","type":"identifier","value":"${ns=x;i=8}"}]}]}`,
			errs: []string{`opcua.json: mapping[0].timeseries[2].value: invalid node id "ns=x;i=8": namespace "x" is not a number`},
		},
		{
			name: "minimums and unknown keys",
			json: `{"server":{"url":"h","subCheckPeriodInMillis":10,"subDataMinBatchCreationTimeMs":50,"pollPeriodInMilis":1}}`,
			warns: []string{
				"warning: opcua.json: server.subCheckPeriodInMillis: 10 is below the minimum of 100, using 100",
				"warning: opcua.json: server.subDataMinBatchCreationTimeMs: 50 is below the minimum of 100, using 100",
				`warning: opcua.json: server.pollPeriodInMilis: unknown key, ignored (did you mean "pollPeriodInMillis"?)`,
			},
		},
		{
			name: "server problems",
			json: `{"server":{"security":"Basic512","identity":{"type":"kerberos"},"timeoutInMillis":"soon"}}`,
			errs: []string{
				`opcua.json: server.url: is required`,
				`opcua.json: server.timeoutInMillis: "soon" is not a whole number of milliseconds`,
				`opcua.json: server.security: unknown value "Basic512" (want one of: None, Basic128Rsa15, Basic256, Basic256Sha256)`,
				`opcua.json: server.identity.type: unknown identity type "kerberos" (want anonymous, basic or certificates)`,
			},
		},
		{
			name: "missing server",
			json: `{}`,
			errs: []string{`opcua.json: server: is required`},
		},
		{
			name: "certificates without files, policy without mode",
			json: `{"server":{"url":"h","security":"Basic256","identity":{"type":"certificates","mode":"None"}}}`,
			errs: []string{
				`opcua.json: server.identity.cert: is required for certificate identity`,
				`opcua.json: server.identity.privateKey: is required for certificate identity`,
				`opcua.json: server.security: policy Basic256 does not fit mode None (None goes with None only)`,
			},
		},
		{
			name: "mapping problems",
			json: `{"server":{"url":"h"},"mapping":[{"deviceNodeSource":"identifier","deviceNodePattern":"Root\\.Objects\\.D",
				"deviceInfo":{"deviceNameExpression":"${Root\\.X[}","deviceNameExpressionSource":"path"},
				"attributes":[{"key":"a","type":"identifier","value":"${Temp}"},{"key":"b","value":"${A","timestampLocation":"device"}],
				"attributes_updates":[{"key":"k"}],"rpc_methods":[{"arguments":[{"type":"int","value":1}]}]},
				{"deviceNodePattern":"Rel","deviceInfo":{"deviceNameExpression":"x ${ns=1;i=2} y","deviceNameExpressionSource":"identifier"}}]}`,
			errs: []string{
				`opcua.json: mapping[0].deviceNodePattern: "Root\\.Objects\\.D" is not a node id (deviceNodeSource is identifier)`,
				"opcua.json: mapping[0].deviceInfo.deviceNameExpression: invalid path \"Root\\\\.X[\": segment 2: \"X[\" is not a valid regular expression: error parsing regexp: unterminated [] set in `X[`",
				`opcua.json: mapping[0].attributes[0].value: "${Temp}" is not a node id (type is identifier)`,
				`opcua.json: mapping[0].attributes[1].value: invalid path "${A": unterminated "${"`,
				`opcua.json: mapping[0].attributes[1].timestampLocation: unknown value "device" (want one of: gateway, sourceTimestamp, serverTimestamp)`,
				`opcua.json: mapping[0].attributes_updates[0].value: is required`,
				`opcua.json: mapping[0].rpc_methods[0].method: is required`,
				`opcua.json: mapping[1].deviceNodePattern: "Rel" must be an absolute path starting with Root\. or a node id`,
			},
		},
		{
			name: "syntax",
			json: `{"server":`,
			errs: []string{`opcua.json: invalid JSON: unexpected EOF`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps spec.Problems
			_, err := Parse(&ps, []byte(tc.json))
			got := lines(ps.Errors())
			if strings.Join(got, "\n") != strings.Join(tc.errs, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.errs, "\n"))
			}
			if (err != nil) != (len(tc.errs) > 0) {
				t.Errorf("err = %v", err)
			}
			if tc.warns != nil {
				if w := lines(ps.Warnings()); strings.Join(w, "\n") != strings.Join(tc.warns, "\n") {
					t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(tc.warns, "\n"))
				}
			}
		})
	}
}

func lines(ps []spec.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
