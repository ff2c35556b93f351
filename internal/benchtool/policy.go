package benchtool

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/tapwatch/tapwatch/internal/pcapgen"
)

// Defaults of the bench policy.
const (
	DefaultRules  = 500
	PolicyAssets  = 250
	dnp3FirstLink = 10 // link address of a plant's first outstation
)

// plantPlan is what a policy needs to know of a plant's hosts.
type plantPlan struct {
	masters     []netip.Addr // Modbus masters; all may write
	plcs        []netip.Addr
	dnp3Masters []netip.Addr
	operators   int // the first operators DNP3 masters select and operate
	outstations []netip.Addr
	others      map[string]netip.Addr // named IT hosts
	networks    map[string]string     // named networks of the plant
	plcNet      string                // the PLCs' network, for the link rule
	// compressed: the plant runs its outstations' events compressed in
	// time, more unsolicited responses in 10 s than a real outstation
	// sends.
	compressed bool
}

var plans = map[string]plantPlan{
	PlantSite: {
		masters: pcapgen.SiteMasters, plcs: pcapgen.SitePLCs,
		dnp3Masters: pcapgen.SiteDNP3Masters, operators: 2, outstations: pcapgen.SiteOutstations,
		others: map[string]netip.Addr{
			"gateway": pcapgen.SiteServers[0], "dns": pcapgen.SiteServers[1], "ntp": pcapgen.SiteServers[2],
			"syslog": pcapgen.SiteServers[3], "nms": pcapgen.SiteServers[4], "jump": pcapgen.SiteServers[5],
		},
		// Not the office network, whose hosts browse the Internet: an
		// asset is an OT host to public-address. Nor the PLCs' network,
		// or the rogue host would be a known asset to new-asset.
		networks: map[string]string{"control": "10.1.10.0/24", "scada": "10.1.30.0/24"},
		plcNet:   "10.1.20.0/24",
	},
	PlantSmall: {
		masters: pcapgen.PlantMasters, plcs: pcapgen.PlantPLCs,
		dnp3Masters: pcapgen.PlantMasters[:2], operators: 1, outstations: pcapgen.PlantOutstations,
		plcNet:     "10.10.1.0/24",
		compressed: true,
	},
}

// Policy writes a policy of n rules over PolicyAssets assets for the named
// plant (PlantSite or PlantSmall), as such a plant might have: its
// masters, PLCs, outstations and servers and, to make up the number,
// devices and networks of other cells. Rule i is of kind i mod 10: writes
// only from the masters (two kinds), setpoint bounds, forbidden function
// codes, write rates, read ranges, DNP3 restarts and stops only from the
// masters, breaker controls only from the operating masters, DNP3 file
// and authentication requests, and rules on networks and sources, which
// cannot be indexed by destination (the first of them, on the PLCs'
// network, is about links: only the masters connect to port 502). Every
// PLC of the plant gets a write rule and a setpoint bound, every
// outstation a restart and a control rule. None fires on the plant's
// normal traffic; the site's rogue host trips the write rules, the
// bounds and the link rule.
func Policy(plant string, n int) ([]byte, error) {
	if err := checkPlant(plant); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("-n %d: negative rule count", n)
	}
	pl := plans[plant]
	var y strings.Builder
	y.WriteString("version: 1\nassets:\n")
	var modbusDevs, dnp3Devs, masters, operators, dnp3Masters []string
	assets := 0
	asset := func(format string, a ...any) {
		fmt.Fprintf(&y, "  "+format+"\n", a...)
		assets++
	}
	for i, a := range pl.masters {
		asset("m%d: {ip: %s}", i, a)
		masters = append(masters, fmt.Sprintf("m%d", i))
	}
	for i, a := range pl.dnp3Masters {
		name := fmt.Sprintf("fep%d", i)
		if k := indexOf(pl.masters, a); k >= 0 {
			name = masters[k] // a Modbus master that also speaks DNP3
		} else {
			asset("%s: {ip: %s, dnp3: %d}", name, a, 1+i)
		}
		dnp3Masters = append(dnp3Masters, name)
		if i < pl.operators {
			operators = append(operators, name)
		}
	}
	for i, a := range pl.plcs {
		asset("plc%d: {ip: %s}", i, a)
		modbusDevs = append(modbusDevs, fmt.Sprintf("plc%d", i))
	}
	for i, a := range pl.outstations {
		asset("rtu%d: {ip: %s, dnp3: %d}", i, a, dnp3FirstLink+i)
		dnp3Devs = append(dnp3Devs, fmt.Sprintf("rtu%d", i))
	}
	for _, name := range slices.Sorted(maps.Keys(pl.others)) {
		asset("%s: {ip: %s}", name, pl.others[name])
	}
	for _, name := range slices.Sorted(maps.Keys(pl.networks)) {
		asset("%s: {cidr: %s}", name, pl.networks[name])
	}
	for i := 0; assets < PolicyAssets; i++ {
		switch {
		case i%10 == 9:
			asset("net%d: {cidr: 10.30.%d.0/24}", i, i)
		case i%3 == 0:
			asset("dev%d: {ip: 10.20.%d.%d, dnp3: %d}", i, i/200, i%200+1, 100+i)
			dnp3Devs = append(dnp3Devs, fmt.Sprintf("dev%d", i))
		default:
			asset("dev%d: {ip: 10.20.%d.%d, modbus_units: [1, %d]}", i, i/200, i%200+1, 2+i%200)
			modbusDevs = append(modbusDevs, fmt.Sprintf("dev%d", i))
		}
	}
	if pl.compressed {
		// The small plant runs its outstations' events compressed in
		// time. The detector stays on, with room for them, so that the
		// benchmark still pays for its check.
		y.WriteString("detectors:\n  dnp3-unsolicited-storm: {rate: {max: 1000, per: 10s}}\n")
	}
	list := func(names []string) string { return "[" + strings.Join(names, ", ") + "]" }
	y.WriteString("rules:\n")
	for i := range n {
		j := i / 10
		ddev := dnp3Devs[j%len(dnp3Devs)]
		fmt.Fprintf(&y, "  - id: r%d\n", i)
		switch i % 10 {
		case 0, 1:
			mdev := modbusDevs[(2*j+i%10)%len(modbusDevs)]
			fmt.Fprintf(&y, "    name: Only the masters write to %s\n    when: {proto: modbus, dst: %s, op: write}\n    unless: {src: %s}\n    severity: high\n    attack: [T0855]\n",
				mdev, mdev, list(masters))
		case 2:
			mdev := modbusDevs[j%len(modbusDevs)]
			fmt.Fprintf(&y, "    name: Setpoints of %s within 0-4095\n    when: {proto: modbus, dst: %s, op: write, table: holding, addr: \"0-499\"}\n    value: {min: 0, max: 4095}\n    severity: high\n    attack: [T0836]\n",
				mdev, mdev)
		case 3:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, fc: [diagnostics, 43, read_file_record, write_file_record]}\n", modbusDevs[(j+7)%len(modbusDevs)])
		case 4:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: write}\n    rate: {max: 50, per: 1s}\n", modbusDevs[(j+13)%len(modbusDevs)])
		case 5:
			fmt.Fprintf(&y, "    when: {proto: modbus, dst: %s, op: read, addr: \"30000-39999\"}\n", modbusDevs[(j+29)%len(modbusDevs)])
		case 6:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, fc: [cold_restart, warm_restart, stop_application]}\n    unless: {src: %s}\n    severity: critical\n",
				ddev, list(dnp3Masters))
		case 7:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, op: control, group: 12, points: \"0-15\"}\n    unless: {src: %s}\n", ddev, list(operators))
		case 8:
			fmt.Fprintf(&y, "    when: {proto: dnp3, dst: %s, op: [file, auth]}\n", ddev)
		case 9:
			// Not indexable by destination: a network, or no destination.
			switch {
			case i == 9:
				fmt.Fprintf(&y, "    name: Only the masters connect to the PLCs' Modbus port\n    when: {dst: %s, port: tcp/502}\n    unless: {src: %s}\n    severity: high\n",
					pl.plcNet, list(masters))
			case i%20 == 9:
				fmt.Fprintf(&y, "    when: {proto: modbus, dst: 10.30.%d.0/24, op: write}\n", i%200)
			default:
				fmt.Fprintf(&y, "    when: {proto: modbus, src: 10.99.%d.0/24}\n", i%200)
			}
		}
	}
	return []byte(y.String()), nil
}

func indexOf(addrs []netip.Addr, a netip.Addr) int {
	for i, b := range addrs {
		if a == b {
			return i
		}
	}
	return -1
}
