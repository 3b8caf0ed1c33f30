#!/usr/bin/env bash
# The connector benchmarks of the README's connector table: each runs alone
# in its compiled test binary under /usr/bin/time, so CPU is the whole test
# process (setup, in-process peers and clients included) as a share of one
# core over the run's wall time. Peers outside the process (mosquitto,
# pymodbus) are not counted. Usage: tests/bench/connectors.sh [benchtime]
set -euo pipefail
cd "$(dirname "$0")/../.."
benchtime=${1:-2s}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # package benchmark [benchtime]
	local pkg=$1 bench=$2 bt=${3:-$benchtime} bin="$dir/$(basename "$1").test"
	[ -x "$bin" ] || go test -c -o "$bin" "./$pkg"
	(cd "$pkg" && /usr/bin/time -f "$pkg $bench: CPU %U+%S s over %e s wall" \
		"$bin" -test.run '^$' -test.bench "^$bench\$" -test.benchtime "$bt" -test.benchmem) 2>&1 |
		grep -E '^Benchmark|CPU|FAIL|SKIP'
}
run protocols/modbus BenchmarkPoll
run protocols/modbus BenchmarkWireSerialPoll
run protocols/modbus BenchmarkServerPoll
run protocols/modbus BenchmarkRTUServer
run protocols/mqtt BenchmarkRun
run protocols/opcua BenchmarkSubscribe10k 1x
run protocols/can BenchmarkRunVirtual
run protocols/snmp BenchmarkConvertWalk
run protocols/request BenchmarkPoll
run protocols/rest BenchmarkServer
run protocols/socket BenchmarkTCP
