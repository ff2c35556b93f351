package testenv

import (
	"os"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
)

// SuricataConfig is the decoder configuration that matches a
// suricata-verify test's suricata.yaml (file): its DNP3 max-objects
// becomes MaxObjects, and MaxFragment is Suricata's bound on a reassembled
// request, the transport sequence space of 63 × 255 bytes, so that the
// too-long anomaly is raised by the same segment. Without the file it is
// the configuration with that bound only.
func SuricataConfig(t testing.TB, file string) dpi.Config {
	t.Helper()
	cfg := dpi.Config{DNP3: dnp3.Config{MaxFragment: 63 * 255}}
	b, err := os.ReadFile(file)
	if err != nil {
		return cfg // the test has no suricata.yaml of its own
	}
	var sy struct {
		AppLayer struct {
			Protocols struct {
				DNP3 struct {
					MaxObjects int `yaml:"max-objects"`
				} `yaml:"dnp3"`
			} `yaml:"protocols"`
		} `yaml:"app-layer"`
	}
	// suricata.yaml starts with "%YAML 1.1" and "---", which go-yaml reads.
	if err := yaml.Unmarshal(b, &sy); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	cfg.DNP3.MaxObjects = sy.AppLayer.Protocols.DNP3.MaxObjects
	return cfg
}
