// Package config is the daemon's configuration file (tapwatch run -c
// FILE): YAML, every field optional but the capture interfaces, with the
// defaults of docs/config.md. Load reports every problem at once, each
// with the file, line, column and field.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/board"
	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/internal/yamlpos"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/uplink"
)

// Defaults.
const (
	DefaultPath        = "/etc/tapwatch/tapwatch.yaml"
	DefaultStateDir    = "/var/lib/tapwatch"
	DefaultSite        = "default"
	DefaultLinkIdle    = 10 * time.Minute
	DefaultLearn       = 7 * 24 * time.Hour
	DefaultCheckpoint  = 5 * time.Minute
	DefaultStatusEvery = time.Minute
	DefaultOpsLogMax   = 64 << 20
	MaxInterfaces      = 8
	MaxConfigSize      = 1 << 20
	ModeMonitor        = "monitor"
	ModeLearn          = "learn"
	defaultModbusPort  = 502
	defaultDNP3Port    = 20000
	maxIfaceNameLen    = 15 // IFNAMSIZ - 1
	minRingBytes       = 1 << 20
	maxRingBytes       = 1 << 30
	maxFilterPorts     = 24
	defaultLogLevel    = "info"
	defaultLogFormat   = "text"
	minLearnCheckpoint = time.Second
	minLinkIdle        = time.Second
	minLearn           = time.Second
	maxBlockTimeout    = time.Second
	minBlockTimeout    = time.Millisecond
	maxStatusEvery     = time.Hour
	minStatusEvery     = time.Second
	defaultPromiscuous = true
)

// Config is the daemon's configuration. The yaml names are those of the
// file; docs/config.md is the reference.
type Config struct {
	Sensor     string   `yaml:"sensor"`     // sensor id: topic level and MQTT client id; default: the host name
	Site       string   `yaml:"site"`       // site: topic level; default "default"
	Interfaces []string `yaml:"interfaces"` // capture interfaces: one, or the two ports of a passive tap
	Ports      Ports    `yaml:"ports"`
	Capture    Capture  `yaml:"capture"`
	// LinkIdle is how long a link may be up without ICS traffic before it
	// counts as idle (a wrong tap port?).
	LinkIdle time.Duration `yaml:"link_idle"`
	MaxFlows int           `yaml:"max_flows"` // flow table size; default dpi.DefaultMaxFlows
	Policy   string        `yaml:"policy"`    // policy file; none: the built-in detectors at their defaults
	Baseline string        `yaml:"baseline"`  // baseline to enforce (tapwatch learn, or a learned.yaml reviewed)
	Mode     string        `yaml:"mode"`      // monitor (default) or learn
	Learn    Learn         `yaml:"learn"`
	StateDir string        `yaml:"state_dir"` // spool, sequence numbers, learning state
	// StatusEvery is how often the status is published again when nothing
	// changed (it is also published on every change).
	StatusEvery time.Duration `yaml:"status_every"`
	// OpsLog, when set, is a file the daemon writes the operations log to
	// (JSON lines, as replay --ops; docs/ops-log.md): every Modbus and
	// DNP3 message decoded. When it reaches OpsLogMaxBytes it is renamed
	// FILE.1 (replacing the previous one) and started again.
	OpsLog         string         `yaml:"ops_log"`
	OpsLogMaxBytes int64          `yaml:"ops_log_max_bytes"` // default 64 MiB
	Uplink         *uplink.Config `yaml:"uplink"`            // nil: no uplink (alerts are logged only)
	Log            Log            `yaml:"log"`
	Hardware       Hardware       `yaml:"hardware"`

	// File is the file the config was loaded from ("" when built in code).
	File string `yaml:"-"`
	pos  yamlpos.Positions
}

// Ports are the ports that carry each protocol. The live capture keeps
// their packets whole and cuts the rest to their headers.
type Ports struct {
	Modbus []uint16 `yaml:"modbus"` // default [502], unless 502 is in ModbusRTU
	DNP3   []uint16 `yaml:"dnp3"`   // default [20000], unless 20000 is in ModbusRTU
	// ModbusRTU are TCP ports that carry Modbus RTU frames with no MBAP
	// header (serial-to-Ethernet gateways); none by default, as there is
	// no standard port.
	ModbusRTU []uint16 `yaml:"modbus_rtu"`
}

// All lists every port, for the capture filter.
func (p Ports) All() []uint16 {
	return slices.Concat(p.Modbus, p.DNP3, p.ModbusRTU)
}

// Capture tunes the kernel ring of each interface.
type Capture struct {
	RingBytes    int           `yaml:"ring_bytes"`    // default 8 MiB per interface
	BlockTimeout time.Duration `yaml:"block_timeout"` // default 100ms
	Promiscuous  *bool         `yaml:"promiscuous"`   // default true
}

// Learn is the learning period of mode learn.
type Learn struct {
	Duration   time.Duration `yaml:"duration"`   // default 168h (a week: every shift and the weekend)
	Margin     *float64      `yaml:"margin"`     // widening of learned value ranges; default policy.DefaultMargin
	Checkpoint time.Duration `yaml:"checkpoint"` // how often what was learned is saved; default 5m
}

// Hardware is the box's LEDs, button, relays and watchdog. A pin left
// empty is the board profile's; "none" is not wired. A pin is a GPIO line
// name (GPIO17), "led:NAME" for a /sys/class/leds LED, or "sim:NAME" for a
// file in SimDir (tests and demos). docs/leds.md is the LED code.
type Hardware struct {
	// Board is the profile: auto (default: detected from
	// /proc/device-tree/model), a profile name, or none (nothing wired).
	Board  string       `yaml:"board"`
	LEDs   HardwareLEDs `yaml:"leds"`
	Button Button       `yaml:"button"`
	Relays Relays       `yaml:"relays"`
	// Watchdog is the hardware watchdog device; empty: the profile's;
	// none: not used.
	Watchdog string `yaml:"watchdog"`
	// Panel is the terminal LED panel on standard error: auto (when it is
	// a terminal; default), on, off.
	Panel string `yaml:"panel"`
	// The roots of /sys, /dev and /proc, for tests against fixture trees.
	SysRoot  string `yaml:"sys_root"`
	DevRoot  string `yaml:"dev_root"`
	ProcRoot string `yaml:"proc_root"`
	// SimDir holds the sim: pins, one file each ("1" or "0").
	SimDir string `yaml:"sim_dir"`
}

// HardwareLEDs are the status LEDs' pins.
type HardwareLEDs struct {
	Run    string `yaml:"run"`
	Link   string `yaml:"link"`
	Uplink string `yaml:"uplink"`
	Alert  string `yaml:"alert"`
	// Board is the board's own LED, which mirrors RUN; empty: the
	// profile's (led:ACT on a Pi).
	Board     string `yaml:"board"`
	ActiveLow bool   `yaml:"active_low"` // the LEDs light when their pin is low
}

// Button is the acknowledge button.
type Button struct {
	Pin string `yaml:"pin"`
	// ActiveLow: pressed connects the pin to ground, with the pin's
	// pull-up (default true).
	ActiveLow *bool `yaml:"active_low"`
}

// Relays are the optional outputs.
type Relays struct {
	Alarm string `yaml:"alarm"`
	// AlarmSeverity: the alarm relay is energized while an alert of this
	// severity or higher is unacknowledged (default high).
	AlarmSeverity string `yaml:"alarm_severity"`
	// Health is energized while the box is healthy, so its contact opens
	// when the box fails, hangs or loses power.
	Health    string `yaml:"health"`
	ActiveLow bool   `yaml:"active_low"` // a relay is energized by a low pin
}

// The terminal panel's settings. The pins' spelling is the board
// package's (board.CheckPin).
const (
	PanelAuto = "auto"
	PanelOn   = "on"
	PanelOff  = "off"
)

// Log is where and how the daemon logs (standard error; journald keeps it).
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Load reads, decodes and validates the config file at path, then sets
// the defaults and makes relative paths relative to the file's folder.
// Every problem is reported, joined, each a *yamlpos.Error.
func Load(path string) (*Config, error) {
	data, err := yamlpos.ReadFile(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(path))
	return c, nil
}

// Parse decodes and validates a config file's contents; name is used in
// errors. Relative paths stay as written.
func Parse(data []byte, name string) (*Config, error) {
	d := &decoder{yamlpos.NewDecoder(name)}
	c := &Config{}
	if err := d.parse(data, c); err != nil {
		return nil, err
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	c.File, c.pos = name, d.Pos
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// SetDefaults fills what is unset.
func (c *Config) SetDefaults() {
	if c.Sensor == "" {
		c.Sensor = Hostname()
	}
	if c.Site == "" {
		c.Site = DefaultSite
	}
	// A gateway may use a default port for RTU over TCP: that port then
	// carries RTU only.
	if len(c.Ports.Modbus) == 0 && !slices.Contains(c.Ports.ModbusRTU, defaultModbusPort) {
		c.Ports.Modbus = []uint16{defaultModbusPort}
	}
	if len(c.Ports.DNP3) == 0 && !slices.Contains(c.Ports.ModbusRTU, defaultDNP3Port) {
		c.Ports.DNP3 = []uint16{defaultDNP3Port}
	}
	if c.Capture.RingBytes == 0 {
		c.Capture.RingBytes = capture.DefaultRingBytes
	}
	if c.Capture.BlockTimeout == 0 {
		c.Capture.BlockTimeout = capture.DefaultBlockTimeout
	}
	if c.Capture.Promiscuous == nil {
		p := defaultPromiscuous
		c.Capture.Promiscuous = &p
	}
	if c.LinkIdle == 0 {
		c.LinkIdle = DefaultLinkIdle
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = dpi.DefaultMaxFlows
	}
	if c.Mode == "" {
		c.Mode = ModeMonitor
	}
	if c.Learn.Duration == 0 {
		c.Learn.Duration = DefaultLearn
	}
	if c.Learn.Margin == nil {
		m := policy.DefaultMargin
		c.Learn.Margin = &m
	}
	if c.Learn.Checkpoint == 0 {
		c.Learn.Checkpoint = DefaultCheckpoint
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.StatusEvery == 0 {
		c.StatusEvery = DefaultStatusEvery
	}
	if c.OpsLogMaxBytes == 0 {
		c.OpsLogMaxBytes = DefaultOpsLogMax
	}
	if c.Log.Level == "" {
		c.Log.Level = defaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = defaultLogFormat
	}
	if c.Uplink != nil {
		c.Uplink.Site, c.Uplink.Sensor = c.Site, c.Sensor
	}
	h := &c.Hardware
	if h.Board == "" {
		h.Board = board.Auto
	}
	if h.Button.ActiveLow == nil {
		t := true
		h.Button.ActiveLow = &t
	}
	if h.Relays.AlarmSeverity == "" {
		h.Relays.AlarmSeverity = "high"
	}
	if h.Panel == "" {
		h.Panel = PanelAuto
	}
	if h.SysRoot == "" {
		h.SysRoot = "/sys"
	}
	if h.DevRoot == "" {
		h.DevRoot = "/dev"
	}
	if h.ProcRoot == "" {
		h.ProcRoot = "/proc"
	}
}

// Hostname is the default sensor id: the host name up to its first dot.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "tapwatch"
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// resolve makes the relative paths relative to dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Policy)
	abs(&c.Baseline)
	abs(&c.StateDir)
	abs(&c.OpsLog)
	abs(&c.Hardware.SimDir)
	if u := c.Uplink; u != nil {
		abs(&u.PasswordFile)
		abs(&u.TLS.CA)
		abs(&u.TLS.Cert)
		abs(&u.TLS.Key)
	}
}

// Validate checks a config with its defaults set; each problem is an
// *yamlpos.Error naming the field (and, for a loaded file, where it is).
func (c *Config) Validate() error {
	var errs []*yamlpos.Error
	bad := func(field, format string, a ...any) {
		errs = append(errs, c.FieldError(field, format, a...))
	}
	level := func(field, s string) {
		switch {
		case s == "":
			bad(field, "empty")
		case strings.ContainsAny(s, "/+#\x00") || strings.TrimSpace(s) != s:
			bad(field, "%q: an MQTT topic level; no /, +, # or surrounding spaces", s)
		}
	}
	level("sensor", c.Sensor)
	level("site", c.Site)
	if len(c.Interfaces) == 0 {
		bad("interfaces", "no capture interface given (the tap port, like eth1; two for the two ports of a passive tap)")
	}
	if len(c.Interfaces) > MaxInterfaces {
		bad("interfaces", "%d interfaces; at most %d", len(c.Interfaces), MaxInterfaces)
	}
	seen := map[string]bool{}
	for i, ifc := range c.Interfaces {
		f := fmt.Sprintf("interfaces[%d]", i)
		switch {
		case ifc == "" || len(ifc) > maxIfaceNameLen || strings.ContainsAny(ifc, "/: \t\n") || ifc == "." || ifc == "..":
			bad(f, "%q is not an interface name (1 to %d characters, no /, : or spaces)", ifc, maxIfaceNameLen)
		case seen[ifc]:
			bad(f, "%q is listed twice", ifc)
		}
		seen[ifc] = true
	}
	ports := map[uint16]string{}
	for _, p := range []struct {
		name string
		list []uint16
	}{{"ports.modbus", c.Ports.Modbus}, {"ports.dnp3", c.Ports.DNP3}, {"ports.modbus_rtu", c.Ports.ModbusRTU}} {
		for i, port := range p.list {
			f := fmt.Sprintf("%s[%d]", p.name, i)
			if port == 0 {
				bad(f, "0 is not a port")
				continue
			}
			if prev, dup := ports[port]; dup {
				bad(f, "port %d is already in %s", port, prev)
				continue
			}
			ports[port] = p.name
		}
	}
	if len(ports) > maxFilterPorts {
		bad("ports", "%d ports; the kernel filter takes at most %d", len(ports), maxFilterPorts)
	}
	if r := c.Capture.RingBytes; r < minRingBytes || r > maxRingBytes {
		bad("capture.ring_bytes", "%d is outside %d (1 MiB) to %d (1 GiB)", r, minRingBytes, maxRingBytes)
	}
	if t := c.Capture.BlockTimeout; t < minBlockTimeout || t > maxBlockTimeout {
		bad("capture.block_timeout", "%v is outside %v to %v", t, minBlockTimeout, maxBlockTimeout)
	}
	if c.LinkIdle < minLinkIdle {
		bad("link_idle", "%v is below %v", c.LinkIdle, minLinkIdle)
	}
	if c.MaxFlows < 16 || c.MaxFlows > 1<<22 {
		bad("max_flows", "%d is outside 16 to %d", c.MaxFlows, 1<<22)
	}
	switch c.Mode {
	case ModeMonitor:
	case ModeLearn:
		if c.Baseline != "" {
			bad("baseline", "set in mode learn: learning writes its own baseline (state_dir/learned.yaml); enforce a baseline in mode monitor")
		}
	default:
		bad("mode", "%q; want monitor or learn", c.Mode)
	}
	if c.Learn.Duration < minLearn {
		bad("learn.duration", "%v is below %v", c.Learn.Duration, minLearn)
	}
	if m := c.Learn.Margin; m != nil && !(*m >= 0 && *m <= 100) {
		bad("learn.margin", "%v is outside 0 to 100", *m)
	}
	if c.Learn.Checkpoint < minLearnCheckpoint {
		bad("learn.checkpoint", "%v is below %v", c.Learn.Checkpoint, minLearnCheckpoint)
	}
	if c.StateDir == "" {
		bad("state_dir", "empty")
	}
	if c.StatusEvery < minStatusEvery || c.StatusEvery > maxStatusEvery {
		bad("status_every", "%v is outside %v to %v", c.StatusEvery, minStatusEvery, maxStatusEvery)
	}
	if c.OpsLogMaxBytes < 4096 {
		bad("ops_log_max_bytes", "%d is below 4096", c.OpsLogMaxBytes)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q; want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q; want text or json", c.Log.Format)
	}
	c.validateHardware(bad)
	if u := c.Uplink; u != nil {
		for _, f := range []string{"site", "sensor"} {
			if _, ok := c.pos["uplink."+f]; ok {
				bad("uplink."+f, "set %s at the top level of the file; the uplink takes it from there", f)
			}
		}
		if err := u.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				field, msg, ok := strings.Cut(line, ": ")
				if !ok {
					field, msg = "uplink", line
				}
				bad(field, "%s", msg)
			}
		}
	}
	return yamlpos.Join(errs)
}

func (c *Config) validateHardware(bad func(field, format string, a ...any)) {
	h := &c.Hardware
	if h.Board != board.Auto && h.Board != board.None {
		if _, ok := board.ByName(h.Board); !ok {
			names := board.Names()
			bad("hardware.board", "%q is not a board profile; want auto, none or one of %s%s", h.Board, strings.Join(names, ", "), yamlpos.DidYouMean(h.Board, names))
		}
	}
	for _, p := range []struct{ field, pin string }{
		{"hardware.leds.run", h.LEDs.Run}, {"hardware.leds.link", h.LEDs.Link}, {"hardware.leds.uplink", h.LEDs.Uplink},
		{"hardware.leds.alert", h.LEDs.Alert}, {"hardware.leds.board", h.LEDs.Board}, {"hardware.button.pin", h.Button.Pin},
		{"hardware.relays.alarm", h.Relays.Alarm}, {"hardware.relays.health", h.Relays.Health},
	} {
		if err := board.CheckPin(p.pin); err != nil {
			bad(p.field, "%v", err)
		} else if strings.HasPrefix(p.pin, board.Sim) && h.SimDir == "" {
			bad(p.field, "%q: a sim pin needs hardware.sim_dir", p.pin)
		}
	}
	if _, err := policy.ParseSeverity(h.Relays.AlarmSeverity); err != nil {
		bad("hardware.relays.alarm_severity", "%q; want info, low, medium, high or critical", h.Relays.AlarmSeverity)
	}
	switch h.Watchdog {
	case "", board.None:
	default:
		if !filepath.IsAbs(h.Watchdog) {
			bad("hardware.watchdog", "%q: want a device path such as /dev/watchdog, or none", h.Watchdog)
		}
	}
	switch h.Panel {
	case PanelAuto, PanelOn, PanelOff:
	default:
		bad("hardware.panel", "%q; want auto, on or off", h.Panel)
	}
	for _, r := range []struct{ field, dir string }{{"hardware.sys_root", h.SysRoot}, {"hardware.dev_root", h.DevRoot}, {"hardware.proc_root", h.ProcRoot}} {
		if !filepath.IsAbs(r.dir) {
			bad(r.field, "%q: want an absolute path", r.dir)
		}
	}
}

// Position is where field (or the nearest enclosing field) is in the
// file; 0, 0 when it is not there.
func (c *Config) Position(field string) (line, column int) { return c.position(field) }

// FieldError is an error about field, with its place in the file when
// the config was loaded from one.
func (c *Config) FieldError(field, format string, a ...any) *yamlpos.Error {
	file := c.File
	if file == "" {
		file = "config"
	}
	return c.pos.Errorf(file, field, field, format, a...)
}

// position is where field (or the nearest enclosing field) is in the
// file; 0, 0 when it is not there.
func (c *Config) position(field string) (int, int) {
	at, _ := c.pos.Lookup(field)
	return at.Line, at.Column
}

// Learning reports whether the config asks for a learning period.
func (c *Config) Learning() bool { return c.Mode == ModeLearn }

// Errors splits an error from Load or Parse into its lines.
func Errors(err error) []string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}
