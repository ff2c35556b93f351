package service

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	names := Names()
	if len(names) != int(numIDs)-1 {
		t.Fatalf("%d names for %d services", len(names), numIDs-1)
	}
	for i, name := range names {
		id := ID(i + 1)
		if id.String() != name {
			t.Errorf("Names()[%d] = %q, but %d is %q", i, name, id, id)
		}
		if got, ok := Lookup(name); !ok || got != id {
			t.Errorf("Lookup(%q) = %v, %v; want %d", name, got, ok, id)
		}
		if name == "" || strings.ToLower(name) != name || strings.ContainsAny(name, " -.") {
			t.Errorf("name %q is not a lower-case identifier", name)
		}
	}
	for _, c := range []struct {
		id   ID
		name string
	}{{Unknown, "unknown"}, {SMB, "smb"}, {EtherNetIP, "ethernet_ip"}, {IEC104, "iec104"}, {numIDs, "invalid"}, {255, "invalid"}} {
		if c.id.String() != c.name {
			t.Errorf("%d is %q, want %q", c.id, c.id, c.name)
		}
	}
	if id, ok := Lookup("unknown"); !ok || id != Unknown {
		t.Errorf(`Lookup("unknown") = %v, %v`, id, ok)
	}
	for _, bad := range []string{"", "invalid", "SMB", "ethernet/ip"} {
		if id, ok := Lookup(bad); ok || id != Unknown {
			t.Errorf("Lookup(%q) = %v, %v", bad, id, ok)
		}
	}
}

// TestClasses holds the classes to the lists.
func TestClasses(t *testing.T) {
	want := map[Class][]ID{
		RemoteAccess: {RDP, SSH, Telnet, VNC},
		FileTransfer: {SMB, FTP, NetBIOSSession},
		ICS:          {Modbus, DNP3, EtherNetIP, S7comm, IEC104, OPCUA, BACnet},
		Chatter:      {NetBIOS, LLMNR, MDNS, SSDP, DHCP, NTP, PTP},
	}
	for c, ids := range want {
		for id := range numIDs {
			if got := id.Has(c); got != slices.Contains(ids, id) {
				t.Errorf("%v.Has(%d) = %v", id, c, got)
			}
		}
	}
	if !SMB.Has(ICS|FileTransfer) || SMB.Has(ICS|Chatter) || Unknown.Classes() != 0 || ID(200).Has(0xFF) {
		t.Error("Has of a union, of Unknown or of an invalid ID is wrong")
	}
}

// docRow is a row of the table in docs/services.md.
type docRow struct {
	name     string
	class    string
	tcp, udp []uint16
}

// readDocTable reads the services table of docs/services.md: the rows
// whose second cell is a name in backquotes.
func readDocTable(t *testing.T) []docRow {
	t.Helper()
	path := filepath.Join("..", "..", "docs", "services.md")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []docRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 7 || !strings.HasPrefix(strings.TrimSpace(cells[2]), "`") {
			continue
		}
		r := docRow{name: strings.Trim(strings.TrimSpace(cells[2]), "`"), class: strings.TrimSpace(cells[3])}
		r.tcp = parsePorts(t, r.name, cells[4])
		r.udp = parsePorts(t, r.name, cells[5])
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// parsePorts reads "445", "20, 21", "5900–5903" or "—".
func parsePorts(t *testing.T, name, cell string) []uint16 {
	t.Helper()
	cell = strings.TrimSpace(cell)
	if cell == "—" {
		return nil
	}
	var out []uint16
	for _, f := range strings.Split(cell, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(f), "–")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || b < a {
			t.Fatalf("docs/services.md, %s: bad ports %q", name, cell)
		}
		for p := a; p <= b; p++ {
			out = append(out, uint16(p))
		}
	}
	return out
}

var classNames = map[string]Class{
	"—": 0, "remote access": RemoteAccess, "file transfer": FileTransfer, "ICS": ICS, "chatter": Chatter,
}

// TestDocTable: docs/services.md lists every service once, with its
// class, and exactly the ports ByPort knows.
func TestDocTable(t *testing.T) {
	rows := readDocTable(t)
	var names []string
	seen := map[bool]map[uint16]ID{false: {}, true: {}}
	for _, r := range rows {
		names = append(names, r.name)
		id, ok := Lookup(r.name)
		if !ok {
			t.Errorf("docs/services.md lists %q, which is no service", r.name)
			continue
		}
		if c, ok := classNames[r.class]; !ok || c != id.Classes() {
			t.Errorf("docs/services.md gives %s the class %q; the code has %#x", r.name, r.class, id.Classes())
		}
		for _, p := range r.tcp {
			seen[false][p] = id
		}
		for _, p := range r.udp {
			seen[true][p] = id
		}
	}
	if !slices.Equal(names, Names()) {
		t.Errorf("docs/services.md lists %v; the services are %v", names, Names())
	}
	for _, udp := range []bool{false, true} {
		for p := range 1 << 16 {
			got, want := ByPort(udp, uint16(p)), seen[udp][uint16(p)]
			if got != want {
				t.Errorf("ByPort(udp %v, %d) = %v; docs/services.md says %v", udp, p, got, want)
			}
		}
	}
}

func TestByPortAllocs(t *testing.T) {
	var named int
	n := testing.AllocsPerRun(10, func() {
		for p := range 1 << 16 {
			if ByPort(false, uint16(p)) != Unknown {
				named++
			}
			if ByPort(true, uint16(p)) != Unknown {
				named++
			}
		}
	})
	if n != 0 {
		t.Errorf("ByPort allocates %.0f times", n)
	}
	if named == 0 {
		t.Error("ByPort names no port")
	}
}

// TestImportsStdOnly: the package promises to import nothing of tapwatch
// and nothing that allocates behind its back (fmt, reflect).
func TestImportsStdOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			t.Errorf("%s imports %s; the package imports nothing", name, path)
		}
	}
}
