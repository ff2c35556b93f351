// Command init is PID 1 of the initramfs that scripts/hil-qemu.sh boots
// under qemu-system-aarch64, machine raspi3b: a BCM2837 whose BCM2835 GPIO
// block Linux drives with pinctrl-bcm2835 and names from the device tree
// (GPIO17, ...), as on a real Pi with a mainline kernel. It runs one
// program under test against that GPIO block, checks the line levels from
// the kernel's side, prints a PASS/FAIL report on the console and powers
// the machine off.
//
// The plan comes from /hil/plan, one step a line ('#' starts a comment),
// carried out in this order whatever the order of the lines:
//
//	module PATH              load a kernel module (finit_module), in the
//	                         order given: the script lists dependencies first
//	set LINE=0|1 ...         drive these levels into the GPIO block before
//	                         the program starts (an input's idle level)
//	run PROGRAM ARG...       the program under test (exactly one)
//	while LINE=0|1 ...       levels that must all hold together while the
//	                         program runs, for a second (or until it exits)
//	press LINE=0|1 DURATION  once the while levels have held: drive LINE to
//	                         the level for DURATION, then back (a button)
//	output TEXT...           the program's output must contain TEXT
//	after LINE=0|1 ...       levels that must hold once it has exited 0
//
// LINE is a GPIO line name as the kernel reports it. Names are mapped to
// offsets through /sys/kernel/debug/gpio; levels are read from the pin
// controller's register dump, /sys/kernel/debug/pinctrl/*/pins, which shows
// what the (emulated) hardware holds, whoever holds the line and however
// (character device or mapped registers). set and press write the GPIO
// block's set and clear registers through /dev/mem, which needs
// iomem=relaxed on the kernel command line (the block belongs to a driver);
// qemu's model latches those writes into the level register whatever the
// pin's direction, which stands in for the outside world driving an input.
//
// The report's last line is "HIL RESULT: PASS" or "HIL RESULT: FAIL".
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func logf(format string, args ...any) {
	fmt.Printf("hil: "+format+"\n", args...)
}

type level struct {
	line string
	want int
}

type plan struct {
	modules   []string
	set       []level
	argv      []string
	while     []level
	press     *level
	pressFor  time.Duration
	output    []string
	after     []level
	lineNames []string // every line the plan names, in order of appearance
}

func parseLevels(words []string) ([]level, error) {
	var ls []level
	for _, kv := range words {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || (v != "0" && v != "1") {
			return nil, fmt.Errorf("%q: want LINE=0 or LINE=1", kv)
		}
		ls = append(ls, level{k, int(v[0] - '0')})
	}
	return ls, nil
}

func parsePlan(path string) (*plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	for n, raw := range strings.Split(string(b), "\n") {
		text, _, _ := strings.Cut(raw, "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s", path, n+1, why) }
		switch f[0] {
		case "module":
			if len(f) != 2 {
				return nil, bad("want 'module PATH'")
			}
			p.modules = append(p.modules, f[1])
		case "run":
			if len(f) < 2 || p.argv != nil {
				return nil, bad("want exactly one 'run PROGRAM ARG...'")
			}
			p.argv = f[1:]
		case "output":
			if len(f) < 2 {
				return nil, bad("want 'output TEXT'")
			}
			p.output = append(p.output, strings.Join(f[1:], " "))
		case "press":
			ls, err := parseLevels(f[1:2])
			if err != nil || len(f) != 3 || p.press != nil {
				return nil, bad("want one 'press LINE=0|1 DURATION'")
			}
			if p.pressFor, err = time.ParseDuration(f[2]); err != nil {
				return nil, bad(err.Error())
			}
			p.press = &ls[0]
			p.lineNames = append(p.lineNames, ls[0].line)
		case "set", "while", "after":
			ls, err := parseLevels(f[1:])
			if err != nil {
				return nil, bad(err.Error())
			}
			for _, l := range ls {
				p.lineNames = append(p.lineNames, l.line)
			}
			switch f[0] {
			case "set":
				p.set = append(p.set, ls...)
			case "while":
				p.while = append(p.while, ls...)
			default:
				p.after = append(p.after, ls...)
			}
		default:
			return nil, bad(fmt.Sprintf("unknown step %q", f[0]))
		}
	}
	if p.argv == nil {
		return nil, fmt.Errorf("%s: no 'run' step", path)
	}
	if p.press != nil && len(p.while) == 0 {
		return nil, fmt.Errorf("%s: 'press' needs a 'while' step to know when to press", path)
	}
	return p, nil
}

func mountAll() error {
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"debugfs", "/sys/kernel/debug", "debugfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

func waitFor(glob string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		m, _ := filepath.Glob(glob)
		if len(m) > 0 || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// debugGPIO is one line of /sys/kernel/debug/gpio, where chip headers read
// "gpiochip0: GPIOs 512-565, parent: platform/3f200000.gpio, pinctrl-bcm2835:"
// and named lines " gpio-529 (GPIO17              |tapwatch@63  ) out hi"
// (no "|consumer) ..." part when nobody holds the line).
var (
	debugChip = regexp.MustCompile(`^gpiochip\d+: GPIOs (\d+)-\d+,.* ([^ ]+):$`)
	debugLine = regexp.MustCompile(`^ gpio-(\d+) \(([^ |)]*) *(?:\|([^)]*?) *\) *(.*))?`)
)

// lineOffsets maps the line names of the chip whose label contains
// chipLabel to their offsets.
func lineOffsets(chipLabel string) (map[string]int, error) {
	b, err := os.ReadFile("/sys/kernel/debug/gpio")
	if err != nil {
		return nil, err
	}
	names := map[string]int{}
	base, in := 0, false
	for _, l := range strings.Split(string(b), "\n") {
		if m := debugChip.FindStringSubmatch(l); m != nil {
			base, _ = strconv.Atoi(m[1])
			in = strings.Contains(m[2], chipLabel)
			continue
		}
		if m := debugLine.FindStringSubmatch(l); in && m != nil && m[2] != "" {
			n, _ := strconv.Atoi(m[1])
			names[m[2]] = n - base
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no named line of a %s chip in /sys/kernel/debug/gpio", chipLabel)
	}
	return names, nil
}

// holders says who holds each named line through the character device:
// "GPIO17 tapwatch@63 out hi", or "GPIO17 not requested" (as when the
// program drives the registers itself).
func holders(names []string) string {
	b, _ := os.ReadFile("/sys/kernel/debug/gpio")
	by := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := debugLine.FindStringSubmatch(l); m != nil && m[2] != "" {
			if m[3] == "" {
				by[m[2]] = "not requested"
			} else {
				by[m[2]] = strings.Join(strings.Fields(m[3]+" "+m[4]), " ")
			}
		}
	}
	var out []string
	for _, n := range unique(names) {
		out = append(out, n+" "+by[n])
	}
	return strings.Join(out, ", ")
}

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// pinLevels reads every pin's level and function from the pin controller's
// dump, lines such as "pin 17 (gpio17) function gpio_out in hi; irq 0 (none)".
func pinLevels(pinsFile string) (map[int]int, map[int]string, error) {
	f, err := os.Open(pinsFile)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	re := regexp.MustCompile(`^pin (\d+) \(.*function (\S+) in (hi|lo)`)
	lv, fn := map[int]int{}, map[int]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			fn[n] = m[2]
			lv[n] = 0
			if m[3] == "hi" {
				lv[n] = 1
			}
		}
	}
	return lv, fn, sc.Err()
}

// gpioRegs is the BCM2835 GPIO block mapped through /dev/mem.
type gpioRegs struct{ mem []byte }

const (
	regSet0 = 0x1c // GPSET0; GPSET1 follows
	regClr0 = 0x28 // GPCLR0; GPCLR1 follows
)

func mapGPIO(phys int64) (*gpioRegs, error) {
	f, err := os.OpenFile("/dev/mem", os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), phys, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap /dev/mem at %#x: %w (is iomem=relaxed on the kernel command line?)", phys, err)
	}
	return &gpioRegs{mem}, nil
}

func (g *gpioRegs) drive(offset, v int) {
	reg := regClr0
	if v == 1 {
		reg = regSet0
	}
	reg += 4 * (offset / 32)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&g.mem[reg])), 1<<(offset%32))
}

type harness struct {
	offsets  map[string]int
	pinsFile string
	regs     *gpioRegs // nil unless the plan sets or presses
	failed   bool
}

func (h *harness) check(what string, ok bool, detail string) {
	verdict := "PASS"
	if !ok {
		verdict, h.failed = "FAIL", true
	}
	if detail != "" {
		what += " (" + detail + ")"
	}
	logf("%s  %s", verdict, what)
}

// matches tells whether every level holds now, and what was seen.
func (h *harness) matches(ls []level) (bool, string) {
	lv, fn, err := pinLevels(h.pinsFile)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var seen []string
	for _, l := range ls {
		off := h.offsets[l.line]
		got, read := lv[off]
		if !read {
			ok = false
			seen = append(seen, l.line+"=?")
			continue
		}
		ok = ok && got == l.want
		seen = append(seen, fmt.Sprintf("%s=%d[%s]", l.line, got, fn[off]))
	}
	return ok, strings.Join(seen, " ")
}

// lockedBuffer collects the program's output while it is also copied to
// the console.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func run() (bool, error) {
	if err := mountAll(); err != nil {
		return false, err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	model, _ := os.ReadFile("/proc/device-tree/model")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	logf("kernel %s, machine %q", unix.ByteSliceToString(uts.Release[:]), strings.TrimRight(string(model), "\x00"))
	logf("command line: %s", strings.TrimSpace(string(cmdline)))

	p, err := parsePlan("/hil/plan")
	if err != nil {
		return false, err
	}
	for _, m := range p.modules {
		if err := loadModule(m); err != nil {
			return false, err
		}
		logf("loaded %s", m)
	}
	if len(waitFor("/dev/gpiochip*", 20*time.Second)) == 0 {
		return false, errors.New("no /dev/gpiochip* appeared")
	}
	pins := waitFor("/sys/kernel/debug/pinctrl/*.gpio*/pins", 5*time.Second)
	if len(pins) != 1 {
		return false, fmt.Errorf("want one GPIO pin controller in /sys/kernel/debug/pinctrl, found %v", pins)
	}
	h := &harness{pinsFile: pins[0]}
	if h.offsets, err = lineOffsets("pinctrl-bcm2835"); err != nil {
		return false, err
	}
	var missing []string
	for _, n := range unique(p.lineNames) {
		if _, ok := h.offsets[n]; !ok {
			missing = append(missing, n)
		}
	}
	h.check("the kernel names every line of the plan", len(missing) == 0,
		fmt.Sprintf("%d lines, missing: %v", len(unique(p.lineNames)), missing))
	if len(missing) > 0 {
		return false, nil
	}
	if len(p.set) > 0 || p.press != nil {
		// The controller's directory is named after its physical address,
		// as in .../pinctrl/3f200000.gpio-pinctrl-bcm2835.
		dir := filepath.Base(filepath.Dir(h.pinsFile))
		hex, _, _ := strings.Cut(dir, ".")
		phys, err := strconv.ParseInt(hex, 16, 64)
		if err != nil {
			return false, fmt.Errorf("no physical address in %q", dir)
		}
		if h.regs, err = mapGPIO(phys); err != nil {
			return false, err
		}
		for _, l := range p.set {
			h.regs.drive(h.offsets[l.line], l.want)
		}
	}
	_, before := h.matches(p.while)
	logf("before: %s", before)

	logf("run: %s", strings.Join(p.argv, " "))
	var out lockedBuffer
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout = io.MultiWriter(os.Stdout, &out)
	cmd.Stderr = io.MultiWriter(os.Stdout, &out)
	cmd.Env = []string{"PATH=/bin", "HOME=/", "TERM=dumb"}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	const holdFor = time.Second
	var (
		runErr  error
		exited  bool
		matched time.Duration = -1 // since start, when the levels first held
		last    string
		broken  string // what was seen when they stopped holding
		pressed bool
	)
	for !exited {
		select {
		case runErr = <-done:
			exited = true
			continue
		case <-time.After(50 * time.Millisecond):
		}
		holding := matched >= 0 && time.Since(start) < matched+holdFor
		if matched < 0 || holding {
			ok, seen := h.matches(p.while)
			switch {
			case matched < 0 && ok:
				matched, last = time.Since(start), seen
				logf("lines held: %s", holders(p.lineNames))
			case matched < 0:
				last = seen
			case !ok && broken == "":
				broken = seen
			}
			continue
		}
		if matched >= 0 && p.press != nil && !pressed {
			pressed = true
			off := h.offsets[p.press.line]
			logf("press: %s=%d for %v", p.press.line, p.press.want, p.pressFor)
			h.regs.drive(off, p.press.want)
			time.Sleep(p.pressFor)
			h.regs.drive(off, 1-p.press.want)
			logf("release: %s=%d", p.press.line, 1-p.press.want)
		}
	}
	took := time.Since(start)
	fmt.Println()
	if len(p.while) > 0 {
		detail := "never all at once; last seen: " + last
		if matched >= 0 {
			detail = fmt.Sprintf("%s, %.1fs after start", last, matched.Seconds())
		}
		h.check("levels while running", matched >= 0, detail)
		if matched >= 0 {
			detail = "then " + broken
			if broken == "" {
				detail = fmt.Sprintf("%v or until exit", holdFor)
			}
			h.check("levels held", broken == "", detail)
		}
	}
	if p.press != nil {
		h.check("the press was made while running", pressed, p.press.line)
	}
	h.check("the program exits 0", runErr == nil, fmt.Sprintf("%s after %.1fs", errString(runErr), took.Seconds()))
	for _, want := range p.output {
		h.check("the output says "+strconv.Quote(want), strings.Contains(out.String(), want), "")
	}
	if len(p.after) > 0 {
		ok, seen := h.matches(p.after)
		h.check("levels after exit", ok, seen)
	}
	return !h.failed, nil
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func main() {
	ok, err := run()
	if err != nil {
		logf("FAIL  harness: %v", err)
		ok = false
	}
	if ok {
		fmt.Println("HIL RESULT: PASS")
	} else {
		fmt.Println("HIL RESULT: FAIL")
	}
	unix.Sync()
	// Power-off needs the watchdog driver (bcm2835_wdt) on this machine;
	// without it the kernel halts and the script stops qemu when it sees
	// the result line.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for { // PID 1 must not exit.
		time.Sleep(time.Hour)
	}
}
