// Package pipeline assembles the sensor's pipeline, once, for tapwatch
// run (sensor/daemon), replay and demo: it loads the policy and the
// baseline, builds the rules engine, the asset inventory and the
// learner, and wires the dpi engine's handler to them and to lists of
// small sinks. It is apart from package sensor, which rules' tests
// import.
package pipeline

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/rules"
	"github.com/tapwatch/tapwatch/rules/learn"
	"github.com/tapwatch/tapwatch/rules/policy"
	"github.com/tapwatch/tapwatch/sensor"
)

// AlertSink receives the rules engine's alerts, in the order they are
// raised, on the pipeline's goroutine. It must not change the alert, nor
// block for long.
type AlertSink interface {
	Alert(a *rules.Alert)
}

// AssetSink receives the inventory's asset messages, on the pipeline's
// goroutine. It may keep the message; it must not block for long.
type AssetSink interface {
	Asset(a *event.Asset)
}

// Sinks are where the pipeline's output goes: each sink of a list gets
// every alert, asset message or decoded message, in list order. The
// assembly never closes a sink: whoever made it closes it, once the
// pipeline is done.
type Sinks struct {
	Alerts []AlertSink
	Assets []AssetSink      // none: no asset inventory is kept
	Ops    []sensor.OpsSink // every decoded message, after the rules, the inventory and the learner
}

// PolicyFiles name the policy and the baseline a pipeline enforces.
type PolicyFiles struct {
	Policy   string // "": the built-in detectors with their defaults
	Baseline string // "": none, or Learned
	// Learned is a baseline already loaded, from LearnedFile (the
	// daemon's learned.yaml); it is enforced when Baseline is "".
	Learned     *policy.Policy
	LearnedFile string
}

// FileError is a policy or baseline that could not be loaded or merged.
type FileError struct {
	What string // "policy" or "baseline"
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.What + " " + e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Load loads the policy, then merges the baseline into it.
func (f PolicyFiles) Load() (*policy.Policy, error) {
	// Parsing YAML makes many times a policy's size in garbage, and the
	// collector's default pacing lets the heap grow to twice what is
	// live before it runs: the box's peak RSS would be set by the load
	// of a large policy, not by the traffic. Collect more often while
	// loading, and between the pieces of a large file at points that are
	// the same in every load (loadCollector; docs/performance.md).
	//
	// The setting is the process's: loads take turns, lest one that
	// starts while another has the pacing off save that and put it back
	// last, leaving the collector off.
	loading.Lock()
	defer loading.Unlock()
	old := debug.SetGCPercent(loadGCPercent)
	defer debug.SetGCPercent(old)
	if old >= 0 && old < loadGCPercent {
		debug.SetGCPercent(old) // already more frugal than that
	}
	pol, err := f.load(newLoadCollector())
	// Give the load's garbage back to the system now rather than when
	// the scavenger gets to it: the engine's tables, made next, then
	// come from fresh pages that cost memory only as they fill, not from
	// retained ones that the allocator zeroes, touching all of them.
	debug.FreeOSMemory()
	return pol, err
}

// loadGCPercent is the collector's GOGC while a policy or baseline loads.
const loadGCPercent = 10

// loading is held by a load, for the collector's setting.
var loading sync.Mutex

// loadCollector collects between the pieces of a file parsed in pieces
// (policy.Collector), with the collector's pacing off meanwhile, much
// as the pacing would at the setting Load gave (GOGC 10, or a lower one
// the process had): once the heap has grown by that percentage of what
// the last collection left live, or by leastGrowth (scaled down with a
// lower setting), whichever is more. The pacing at points of the parse
// instead of beside it. A collection paced by GOGC runs concurrently
// with the parse, and how much it marked, and when the next one
// started, moved with the scheduling from run to run: by up to eight
// million instructions at the 500-rule policy's start-up, 27 a packet
// of the bench's 300k-packet count (docs/performance.md, "Later
// (11)"). A file parsed whole keeps the pacing.
//
// The pacing is off with a memory limit beside it (offLimit), as the
// runtime takes a collection that ends with its heap goal above 1 GiB
// as a sign of a large heap: it then asks the kernel for huge pages for
// its heap metadata (madvise MADV_HUGEPAGE on the arena index and the
// page allocator's chunks), for the rest of the process's life. With
// the pacing simply off, the goal is unbounded, and each forced
// collection of a load would do that: where the kernel gives huge
// pages on request, one of those regions, first touched, then took
// 2 MiB instead of a few pages, and the replay's peak RSS from 18.9
// MiB to 20.9, in about one run of ten (docs/performance.md, "Later
// (14)").
type loadCollector struct {
	gogc    int    // the setting before the pieces, given back after them
	limit   int64  // the memory limit before them, given back after them
	next    uint64 // collect when the bytes allocated so far reach it
	samples [2]metrics.Sample
}

// offLimit is the memory limit while the pacing is off between pieces,
// when the process has none lower: it keeps the collector's heap goal
// below the runtime's 1 GiB mark for huge pages for its metadata. No
// load comes near it between two pieces (a large learned baseline
// peaks at tens of MiB), so it starts no collection of its own.
const offLimit = 512 << 20

// leastGrowth is the least the heap grows between two collections of a
// load in pieces, at loadGCPercent. Each collection of a load took 0.3
// to 0.8 ms here (GODEBUG=gctrace=1), however little it had to mark.
// The 500-rule policy keeps about 1 MiB live while it parses, and 10%
// of that is less than the garbage of one of its 20 pieces: without a
// least growth, 18 pieces ended with a collection, 27 collections in
// the whole start-up, half of its instructions. With 1 MiB it collects
// after 8 of its pieces (16 in all), 81 million instructions fewer,
// 22%, and its heap reaches 3 MB, far below what the replay reaches
// after it. A large baseline keeps enough live for its
// 10% to be the larger long before its peak, which stays where it was
// (docs/performance.md, "Later (12)"). Those figures are of the YAML
// parser's garbage; read by policy's own reader since "Later (13)",
// the 500 rules leave little, and collect once in their pieces.
const leastGrowth = 1 << 20

func newLoadCollector() *loadCollector {
	c := &loadCollector{}
	c.samples[0].Name, c.samples[1].Name = "/gc/heap/allocs:bytes", "/gc/heap/live:bytes"
	return c
}

func (c *loadCollector) Pieces(on bool) {
	if !on {
		debug.SetGCPercent(c.gogc)
		debug.SetMemoryLimit(c.limit)
		return
	}
	c.limit = debug.SetMemoryLimit(-1) // -1 reads it
	if c.limit > offLimit {
		debug.SetMemoryLimit(offLimit)
	}
	c.gogc = debug.SetGCPercent(-1)
	c.plan()
}

func (c *loadCollector) Piece() {
	metrics.Read(c.samples[:1])
	if c.samples[0].Value.Uint64() >= c.next {
		runtime.GC()
		c.plan()
	}
}

// plan sets the allocation at which the next collection is due.
func (c *loadCollector) plan() {
	pct := uint64(loadGCPercent)
	if c.gogc >= 0 && c.gogc < loadGCPercent {
		pct = uint64(c.gogc)
	}
	metrics.Read(c.samples[:])
	allocs, live := c.samples[0].Value.Uint64(), c.samples[1].Value.Uint64()
	c.next = allocs + max(live*pct/100, leastGrowth*pct/loadGCPercent)
}

func (f PolicyFiles) load(c policy.Collector) (*policy.Policy, error) {
	pol := policy.New()
	if f.Policy != "" {
		p, err := policy.LoadCollecting(f.Policy, c)
		if err != nil {
			return nil, &FileError{"policy", f.Policy, err}
		}
		pol = p
	}
	base, from := f.Learned, f.LearnedFile
	if f.Baseline != "" {
		b, err := policy.LoadCollecting(f.Baseline, c)
		if err != nil {
			return nil, &FileError{"baseline", f.Baseline, err}
		}
		base, from = b, f.Baseline
	}
	if base == nil {
		return pol, nil
	}
	merged, err := policy.MergeBaseline(pol, base)
	if err != nil {
		return nil, &FileError{"baseline", from, err}
	}
	return merged, nil
}

// Setup says what to assemble.
type Setup struct {
	DPI dpi.Config
	// Policy is what the engine enforces, loaded with PolicyFiles.Load
	// (a caller reports a bad file before it makes its sinks); nil: the
	// built-in detectors with their defaults.
	Policy *policy.Policy
	Engine rules.EngineOptions
	// Learn: a learn.Learner learns from every message, next to the
	// engine, resuming from Resume when it is not nil.
	Learn  bool
	Resume *policy.Policy
	Sinks  Sinks
}

// Assembly is an assembled pipeline. Its parts belong to the goroutine
// that feeds the pipeline, but for Rebuild.
type Assembly struct {
	Pipe      *sensor.Pipeline
	Engine    *rules.Engine
	Policy    *policy.Policy   // what Engine enforces
	Inventory *rules.Inventory // nil without asset sinks
	Learner   *learn.Learner   // nil when not learning

	setup  Setup
	alerts rules.AlertSink
}

// Assemble builds the pipeline.
func Assemble(s Setup) (*Assembly, error) {
	a := &Assembly{setup: s, alerts: alertFan(s.Sinks.Alerts), Policy: s.Policy}
	if len(s.Sinks.Alerts) == 1 {
		a.alerts = s.Sinks.Alerts[0]
	}
	if a.Policy == nil {
		a.Policy = policy.New()
	}
	var err error
	if a.Engine, err = a.newEngine(a.Policy); err != nil {
		return nil, err
	}
	opts := sensor.Options{DPI: s.DPI, Rules: a.Engine}
	switch len(s.Sinks.Assets) {
	case 0:
	case 1:
		a.Inventory = rules.NewInventory(s.Sinks.Assets[0], 0, 0)
	default:
		a.Inventory = rules.NewInventory(assetFan(s.Sinks.Assets), 0, 0)
	}
	if a.Inventory != nil {
		opts.Assets = a.Inventory
	}
	if s.Learn {
		a.Learner = learn.New(learn.Options{Adapters: s.Engine.Adapters})
		a.Learner.Resume(s.Resume)
	}
	opts.Ops = a.opsSink()
	if a.Pipe, err = sensor.New(opts); err != nil {
		return nil, err
	}
	return a, nil
}

// Rebuild loads files and builds an engine on them, with the assembly's
// alert sinks and engine options; safe on any goroutine. Put it in
// place with SetEngine.
func (a *Assembly) Rebuild(files PolicyFiles) (*rules.Engine, *policy.Policy, error) {
	policy, err := files.Load()
	if err != nil {
		return nil, nil, err
	}
	e, err := a.newEngine(policy)
	if err != nil {
		return nil, nil, err
	}
	return e, policy, nil
}

func (a *Assembly) newEngine(p *policy.Policy) (*rules.Engine, error) {
	return rules.NewEngine(p, a.alerts, a.setup.Engine)
}

// SetEngine puts e, built by Rebuild on policy, in the place of the
// engine. e takes over what the old one counted, folded and remembered
// that is still valid under its policy (rules.Engine.TakeOver), so that
// a reload neither lets a rate straddling it through nor raises again
// the alerts being folded.
func (a *Assembly) SetEngine(e *rules.Engine, p *policy.Policy) {
	e.TakeOver(a.Engine)
	a.Engine, a.Policy = e, p
	a.Pipe.SetRules(e)
}

// StopLearning takes the learner out of the pipeline.
func (a *Assembly) StopLearning() {
	a.Learner = nil
	a.Pipe.SetOps(a.opsSink())
}

// opsSink is what gets every decoded message after the rules and the
// inventory: the learner, then the ops sinks.
func (a *Assembly) opsSink() sensor.OpsSink {
	var ops []sensor.OpsSink
	if a.Learner != nil {
		ops = append(ops, a.Learner)
	}
	ops = append(ops, a.setup.Sinks.Ops...)
	switch len(ops) {
	case 0:
		return nil
	case 1:
		return ops[0]
	}
	return opsFan(ops)
}

// AddOps adds o to the end of the ops sinks.
func (a *Assembly) AddOps(o sensor.OpsSink) {
	a.setup.Sinks.Ops = append(slices.Clip(a.setup.Sinks.Ops), o)
	a.Pipe.SetOps(a.opsSink())
}

// Replay runs every packet of src through the pipeline, then flushes
// it (sensor.Replay).
func (a *Assembly) Replay(ctx context.Context, src capture.Source) (sensor.Summary, error) {
	return a.Pipe.Replay(ctx, src)
}

// Learn runs every packet of src through a pipeline with a learner in
// the place of the rules engine (tapwatch learn), and returns what it
// learned.
func Learn(ctx context.Context, src capture.Source, cfg dpi.Config) (*learn.Learner, sensor.Summary, error) {
	l := learn.New(learn.Options{})
	sum, err := sensor.Replay(ctx, src, sensor.Options{DPI: cfg, Rules: l})
	return l, sum, err
}

// AlertPublisher is what PublishAlerts needs of a publisher (an
// *uplink.Publisher).
type AlertPublisher interface {
	// Alert publishes a. key is the engine's id of the alert, the same
	// for its folded repeats; first is false for those repeats.
	Alert(a *event.Alert, key uint64, first bool)
}

// PublishAlerts makes p an alert sink: each alert goes to it as the
// wire schema's alert.
func PublishAlerts(p AlertPublisher) AlertSink { return publishAlerts{p} }

type publishAlerts struct{ p AlertPublisher }

func (s publishAlerts) Alert(a *rules.Alert) { s.p.Alert(a.Event(), a.ID, !a.Summary) }

// The fan-outs hand each call to every sink of a list, in order.
type (
	alertFan []AlertSink
	assetFan []AssetSink
	opsFan   []sensor.OpsSink
)

func (f alertFan) Alert(a *rules.Alert) {
	for _, s := range f {
		s.Alert(a)
	}
}

func (f assetFan) Asset(a *event.Asset) {
	for _, s := range f {
		s.Asset(a)
	}
}

func (f opsFan) Message(fl *dpi.Flow, from dpi.Side, m any) {
	for _, s := range f {
		s.Message(fl, from, m)
	}
}

// NetHandlers implements sensor.NetSinks: the ops sinks that watch the
// network (a learner) get its events.
func (f opsFan) NetHandlers() []dpi.NetHandler {
	var ns []dpi.NetHandler
	for _, s := range f {
		if n, ok := s.(dpi.NetHandler); ok {
			ns = append(ns, n)
		}
	}
	return ns
}
