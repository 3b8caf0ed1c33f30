package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/industryos/gateway/protocols/modbus/sim"
)

func cmdSim(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, "usage: iotgw sim modbus [flags]   (iotgw sim modbus --help lists them)")
		return 0
	}
	if len(args) == 0 || args[0] != "modbus" {
		fmt.Fprintln(stderr, "usage: iotgw sim modbus [--devices N] [--registers M] [--port P] [--config FILE]")
		return 2
	}
	fs := newFlagSet("sim modbus", stderr)
	devices := fs.Int("devices", 10, "devices (unit ids 1..N, at most 247)")
	registers := fs.Int("registers", 10, "holding registers per device")
	port := fs.Int("port", 5020, "TCP port")
	host := fs.String("host", "127.0.0.1", "listen address")
	poll := fs.Duration("poll", time.Second, "poll period written into the generated gateway config")
	cfgOut := fs.String("config", "", "also write a matching modbus connector config to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	if *devices < 1 || *devices > 247 {
		fmt.Fprintf(stderr, "sim: --devices %d out of range (want 1..247)\n", *devices)
		return 2
	}
	s, err := sim.Start(sim.Options{Addr: fmt.Sprintf("%s:%d", *host, *port), Devices: *devices, Registers: *registers, Animate: true})
	if err != nil {
		fmt.Fprintln(stderr, "sim:", err)
		return 1
	}
	defer s.Close()
	if *cfgOut != "" {
		if err := os.WriteFile(*cfgOut, sim.GatewayConfig(s.Addr(), *devices, *registers, *poll), 0o644); err != nil {
			fmt.Fprintln(stderr, "sim:", err)
			return 1
		}
	}
	sig := stopSignals()
	fmt.Fprintf(stdout, "modbus simulator on %s: %d devices × %d registers\n", s.Addr(), *devices, *registers)
	<-sig
	return 0
}
