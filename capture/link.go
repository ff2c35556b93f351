package capture

// LinkInfo is what the kernel says of a network interface.
type LinkInfo struct {
	Name      string
	Exists    bool   // the interface is there at all
	AdminUp   bool   // IFF_UP: configured up
	Carrier   bool   // IFF_LOWER_UP: the cable or the veth peer is there
	OperState string // RFC 2863 operational state: up, down, lowerlayerdown, dormant, notpresent, testing, unknown
}

// Up reports whether the interface can deliver packets: configured up,
// with carrier, and operationally up (or "unknown", which drivers without
// operational state report).
func (l LinkInfo) Up() bool {
	return l.Exists && l.AdminUp && l.Carrier && (l.OperState == "up" || l.OperState == "unknown")
}

// String says it in a word or two for logs: "up", "down (no carrier)".
func (l LinkInfo) String() string {
	switch {
	case !l.Exists:
		return "down (no such interface)"
	case !l.AdminUp:
		return "down (administratively)"
	case !l.Carrier:
		return "down (no carrier)"
	case !l.Up():
		return "down (" + l.OperState + ")"
	}
	return "up"
}

var operStates = [...]string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}

func operStateName(v uint8) string {
	if int(v) < len(operStates) {
		return operStates[v]
	}
	return "unknown"
}
