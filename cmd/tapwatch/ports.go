package main

import (
	"flag"
	"slices"
	"strings"

	"github.com/tapwatch/tapwatch/dpi"
)

// rtuPortsFlag registers --modbus-rtu-ports, which replay and learn share.
func rtuPortsFlag(fs *flag.FlagSet) *string {
	return fs.String("modbus-rtu-ports", "", "comma-separated TCP ports that carry Modbus RTU frames with no MBAP header, as serial-to-Ethernet gateways send them; none by default")
}

// setRTUPorts puts the ports of --modbus-rtu-ports in cfg. A gateway may
// use 502 or 20000: an RTU port leaves the default of --modbus-ports or
// --dnp3-ports, but may not be given to them as well (cfg.Validate says
// so).
func setRTUPorts(fs *flag.FlagSet, list string, cfg *dpi.Config) error {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	ports, err := parsePorts(list)
	if err != nil {
		return usageError("--modbus-rtu-ports: %v", err)
	}
	cfg.ModbusRTUPorts = ports
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	isRTU := func(p uint16) bool { return slices.Contains(ports, p) }
	if !given["modbus-ports"] {
		cfg.ModbusPorts = slices.DeleteFunc(cfg.ModbusPorts, isRTU)
	}
	if !given["dnp3-ports"] {
		cfg.DNP3Ports = slices.DeleteFunc(cfg.DNP3Ports, isRTU)
	}
	return nil
}
