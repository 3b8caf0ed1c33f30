#!/bin/sh
# An exec connector program (examples/exec.json): prints this machine's
# load average as one JSON record per line every PERIOD seconds (first
# argument, default 5). It reads no commands: RPCs to its device time out.
period=${1:-5}
device=${DEVICE:-$(hostname)}
while :; do
	read -r one five fifteen procs _ </proc/loadavg || exit 1
	printf '{"device":"%s","profile":"host","telemetry":{"load1":%s,"load5":%s,"load15":%s,"running":%s,"processes":%s}}\n' \
		"$device" "$one" "$five" "$fifteen" "${procs%/*}" "${procs#*/}"
	sleep "$period"
done
