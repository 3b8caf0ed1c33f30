// Package script runs converters written in Starlark (go.starlark.net, a
// Python dialect without I/O), so a site can add or adapt a device format
// without a Go toolchain: the script file replaces upstream's Python
// "custom" converter classes. Every connector with converters uses this one
// package (MQTT and REST through protocols/kit/jsonconv).
//
// # The script API
//
// A script defines uplink, downlink, or both:
//
//	def uplink(msg):
//	    # msg.payload  bytes as received
//	    # msg.text     the payload as a string (bytes are not decoded: the same bytes)
//	    # msg.json()   the payload parsed as JSON (dicts, lists, ints, floats)
//	    # msg.topic    MQTT topic, URL path, peer address or CAN id, as the connector names it
//	    # msg.meta     dict of what else the connector knows (may be empty)
//	    # msg.config   the converter's extensionConfig (None when absent)
//	    # msg.ts       receive time, Unix milliseconds
//	    return {"device": "sensor1", "profile": "Thermostat",
//	            "telemetry": {"temperature": 21.5}, "attributes": {"fw": "1.2"}}
//
// uplink returns one such dict, a list of them (several devices, or several
// timestamps: "ts" in milliseconds, default the receive time) or None
// (nothing to report). "telemetry" may also be a list of
// {"ts": ms, "values": {...}}. Values are bools, ints, floats and strings;
// a dict or list becomes a JSON value. "device" is required; "profile"
// defaults to "default".
//
//	def downlink(cmd):
//	    # cmd.kind     "rpc" or "attributes"
//	    # cmd.device   the device name
//	    # cmd.method, cmd.id, cmd.params   (rpc) params decoded from JSON
//	    # cmd.values   (attributes) dict of the updated shared attributes
//	    # cmd.config   the converter's extensionConfig
//	    return {"topic": "sensor1/set", "payload": {"value": cmd.params}}
//
// downlink returns one dict, a list of them, or None (nothing to send).
// "payload" is a string, bytes, or a dict/list sent as JSON; "reply" is
// what an RPC answers the platform (default: the connector's usual
// answer). The other keys depend on the connector (Keys; any other key
// is an error naming the allowed ones):
//
//	MQTT           topic, qos, retain (a missing qos or retain takes the entry's)
//	Request, REST  url (Request: absolute or a path on the host), method, headers
//	               (over the entry's); payload is the body
//	Socket         none: payload is written to the device's connection as is
//	CAN            nodeId, isExtendedId, isFd, bitrateSwitch: one frame, payload its data
//
// MQTT, Request and REST command entries name the script ("script" in
// place of their URL/topic and value expressions); a Socket or CAN
// device's own script takes the RPCs and attribute updates no entry of
// the device declares, and returning None leaves them to the reserved
// set and the unknown-method error.
//
// Besides Starlark's built-ins a script has json (encode, decode),
// math, Python's round, hex, bin, oct and sum, and binary: fromhex(s) and
// list(b) (lists of ints), int(b, order="big", signed=False),
// float(b, order="big") (4 or 8 bytes), pack_int(n, size, order="big"),
// pack_float(x, size=4, order="big") and hex(b). print goes to the
// gateway's debug log (to stderr under `iotgw convert`).
//
// # Other entry points
//
// A script loaded with Options.Func names its own entry point, a function
// of one parameter, and may define neither uplink nor downlink: the
// automation script handler loads def run(event): this way. Call runs it
// with a read-only struct and returns what it returned as JSON.
//
// # Limits
//
// Scripts are compiled once, when the connector loads; a syntax or name
// error is a config error with file:line:column (`iotgw check`). The
// sandbox has no load statement, no file, network or clock access. Each
// call runs with a step limit (Options.MaxSteps, default DefaultMaxSteps),
// so a script that loops forever is stopped; `*` and `+` refuse results
// larger than pyexpr.MaxSize elements; recursion is refused. Top-level
// variables are frozen after loading, so a script keeps no state between
// messages and one compiled script serves every device concurrently.
package script
