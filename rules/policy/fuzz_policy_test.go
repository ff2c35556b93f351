package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: arbitrary bytes never make Parse panic, and a policy that
// loads formats to text that loads again to the same policy.
func FuzzParse(f *testing.F) {
	// Every hand-written case is a seed, valid or not.
	files, _ := filepath.Glob("testdata/cases/*/policy.yaml")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(""))                                                    // empty file: the defaults
	f.Add([]byte("rules:\n  - id: a\n    when: {fc: 0x10-0x20}\n"))      // hex range, no proto
	f.Add([]byte("assets: {a: {ip: \"::ffff:10.0.0.1\"}}\nrules: []\n")) // IPv4-mapped IPv6
	f.Add([]byte("rules:\n  - id: a\n    name: \"\\u00e9\\t\"\n    when: {proto: modbus}\n"))
	// The network section, a polling rhythm and a rule about links.
	f.Add([]byte("assets: {p: {ip: 10.0.0.2}}\nbaseline:\n  conversations:\n    - {src: 10.0.0.1, dst: p, proto: modbus, fc: 3, max_gap: 10s}\n" +
		"  network:\n    hosts: [{host: p, mac: \"02:00:00:00:00:02\"}]\n    links: [{src: 10.0.0.1, dst: p, port: tcp/502, service: modbus}]\n"))
	f.Add([]byte("assets: {p: {ip: 10.0.0.2}}\nrules:\n  - id: a\n    when: {dst: p, service: [smb, any], port: tcp/445}\n    unless: {src: 10.0.0.0/8}\n"))
	// What devices answered and reported.
	f.Add([]byte("baseline:\n  conversations:\n    - {src: 10.0.0.1, dst: 10.0.0.2, proto: modbus, fc: 3, answered: {holding_registers: \"0-9\", coils: 5}}\n" +
		"    - {src: 10.0.0.1, dst: 10.0.0.3, proto: dnp3, fc: 1, reported: [{group: \"1/2\", points: \"0-2\"}, {group: 30}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		var out bytes.Buffer
		p.Format(&out)
		again, err := Parse(out.Bytes(), "formatted.yaml")
		if err != nil {
			t.Fatalf("formatted policy does not load: %v\ninput:\n%s\nformatted:\n%s", err, data, out.Bytes())
		}
		if !samePolicy(p, again) {
			var out2 bytes.Buffer
			again.Format(&out2)
			t.Fatalf("round trip changed the policy\ninput:\n%s\nformatted:\n%s\nformatted again:\n%s", data, out.Bytes(), out2.Bytes())
		}
	})
}
