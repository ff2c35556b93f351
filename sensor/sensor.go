// Package sensor is the pipeline shared by the daemon (live capture) and
// replay (capture files): it pulls packets from a capture source, decodes
// them with dpi, and hands the decoded operations to the sinks. It also
// keeps the run's counters. Package sensor/pipeline assembles it with the
// policy, the rules engine and the sinks.
package sensor

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/tapwatch/tapwatch/capture"
	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
	"github.com/tapwatch/tapwatch/event"
)

// OpsSink receives every decoded message, of whatever protocol: it is a
// dpi.Handler. The arguments are reused after the call returns.
type OpsSink = dpi.Handler

// Options configure a pipeline.
type Options struct {
	DPI dpi.Config
	Ops OpsSink // optional: receives every decoded message
	// Rules is optional: the rule engine (a *rules.Engine, or anything that
	// takes decoded messages). It receives every decoded message after the
	// tally and before Ops. When it has a Flush method, Pipeline.Flush
	// (and so Replay, at the end of the capture) calls it after the
	// decoder has flushed its flows.
	Rules OpsSink
	// Assets is optional: the asset inventory (a *rules.Inventory). It
	// receives every decoded message after Rules.
	Assets OpsSink
}

// DNP3Tally counts decoded DNP3 messages.
type DNP3Tally struct {
	Fragments   uint64 // application fragments
	LinkFrames  uint64 // link-only frames
	Garbage     uint64 // runs of bytes that were no DNP3 frame
	Malformed   uint64 // messages with an anomaly of their own, not only a dnp3.Misuse
	Anomalous   uint64 // messages with any anomaly, dnp3.Misuse included
	Truncated   uint64 // fragments that never saw their FIN
	Unsolicited uint64
	ByFC        [256]uint64
	ByReason    [64]uint64
}

// Tally counts decoded messages.
type Tally struct {
	Messages   uint64
	Requests   uint64
	Responses  uint64
	Exceptions uint64
	Malformed  uint64
	Orphans    uint64 // responses with no request
	Unanswered uint64 // requests that got no response
	ByFC       [128]uint64
	ByReason   [64]uint64 // malformed messages by modbus.Reason
	DNP3       DNP3Tally
	Others     [256]uint64 // messages of other protocols, by protocol ID
}

// Pipeline decodes packets and counts what it saw. It is not safe for
// concurrent use.
type Pipeline struct {
	eng    *dpi.Engine
	rules  OpsSink
	assets OpsSink
	flows  dpi.FlowHandler // rules, when it wants new flows but no other network event
	// nets are the sinks that watch the network, in order: the rules,
	// the inventory, the ops sink (a learner).
	nets []dpi.NetHandler
	// integ is the rules, when they check the integrity of ICS streams.
	integ dpi.IntegrityHandler
	ops   OpsSink
	tally Tally
	// src is the capture source (interface) of the packet being decoded;
	// bySource counts the messages decoded from each, so that a link's
	// ICS traffic can be told from its other traffic.
	src      int
	bySource [MaxSources]uint64
}

// MaxSources is how many capture sources the per-source message counts
// tell apart; later sources count with the last.
const MaxSources = 8

// New builds a pipeline.
func New(opts Options) (*Pipeline, error) {
	p := &Pipeline{rules: opts.Rules, assets: opts.Assets, ops: opts.Ops}
	p.wire()
	eng, err := dpi.New(opts.DPI, p)
	if err != nil {
		return nil, err
	}
	p.eng = eng
	return p, nil
}

// SetRules replaces the rule engine (nil: none); the next message goes to
// the new one. Flush the old one first if it has folded alerts to report.
func (p *Pipeline) SetRules(r OpsSink) {
	p.rules = r
	p.wire()
}

// SetOps replaces the operations sink (nil: none).
func (p *Pipeline) SetOps(o OpsSink) {
	p.ops = o
	p.wire()
}

// NetSinks is implemented by a sink that stands for several (a fan
// out): the pipeline hands the network events straight to those of them
// that watch the network.
type NetSinks interface {
	NetHandlers() []dpi.NetHandler
}

// wire finds which sinks watch the network.
func (p *Pipeline) wire() {
	p.flows, p.nets = nil, p.nets[:0]
	for _, s := range []OpsSink{p.rules, p.assets, p.ops} {
		switch n := s.(type) {
		case dpi.NetHandler:
			p.nets = append(p.nets, n)
		case NetSinks:
			p.nets = append(p.nets, n.NetHandlers()...)
		}
	}
	if _, net := p.rules.(dpi.NetHandler); !net {
		p.flows, _ = p.rules.(dpi.FlowHandler)
	}
	p.integ, _ = p.rules.(dpi.IntegrityHandler)
}

// SourceMessages is the number of messages decoded so far
// from packets of capture source i.
func (p *Pipeline) SourceMessages(i int) uint64 { return p.bySource[min(i, MaxSources-1)] }

// Message implements dpi.Handler: it counts m, then hands it to the rule
// engine, the asset inventory and the operations sink, in that order.
func (p *Pipeline) Message(f *dpi.Flow, from dpi.Side, m any) {
	p.bySource[p.src]++
	switch m := m.(type) {
	case *modbus.Message:
		p.tally.countModbus(m)
	case *dnp3.Message:
		p.tally.countDNP3(m)
	default:
		p.tally.Others[f.App]++
	}
	if p.rules != nil {
		p.rules.Message(f, from, m)
	}
	if p.assets != nil {
		p.assets.Message(f, from, m)
	}
	if p.ops != nil {
		p.ops.Message(f, from, m)
	}
}

// countModbus counts a Modbus message.
func (t *Tally) countModbus(m *modbus.Message) {
	if m.Outcome == modbus.OutcomeUnanswered {
		t.Unanswered++
	} else {
		t.Messages++
		switch m.Dir {
		case modbus.Request:
			t.Requests++
		case modbus.Response:
			t.Responses++
		}
		if m.HasFunction() {
			t.ByFC[m.FC&0x7f]++
		}
		if m.Exception != 0 {
			t.Exceptions++
		}
		if m.Malformed != 0 {
			t.Malformed++
			t.ByReason[int(m.Malformed)%len(t.ByReason)]++
		}
		if m.Outcome == modbus.OutcomeOrphan {
			t.Orphans++
		}
	}
}

// NewFlow implements dpi.FlowHandler for the sinks that watch flows.
func (p *Pipeline) NewFlow(f *dpi.Flow, t time.Time) {
	if p.flows != nil {
		p.flows.NewFlow(f, t)
	}
	for _, n := range p.nets {
		n.NewFlow(f, t)
	}
}

// FlowData implements dpi.NetHandler for the sinks that watch the network.
func (p *Pipeline) FlowData(f *dpi.Flow, t time.Time) {
	for _, n := range p.nets {
		n.FlowData(f, t)
	}
}

// FlowCounts implements dpi.NetHandler for the sinks that watch the network.
func (p *Pipeline) FlowCounts(f *dpi.Flow, t time.Time) {
	for _, n := range p.nets {
		n.FlowCounts(f, t)
	}
}

// FlowEnd implements dpi.NetHandler for the sinks that watch the network.
func (p *Pipeline) FlowEnd(f *dpi.Flow, t time.Time) {
	for _, n := range p.nets {
		n.FlowEnd(f, t)
	}
}

// ARP implements dpi.NetHandler for the sinks that watch the network.
func (p *Pipeline) ARP(a *dpi.ARP) {
	for _, n := range p.nets {
		n.ARP(a)
	}
}

// Integrity implements dpi.IntegrityHandler for the rules.
func (p *Pipeline) Integrity(f *dpi.Flow, s *dpi.Integrity) {
	if p.integ != nil {
		p.integ.Integrity(f, s)
	}
}

// ICMP implements dpi.NetHandler for the sinks that watch the network.
func (p *Pipeline) ICMP(m *dpi.ICMP) {
	for _, n := range p.nets {
		n.ICMP(m)
	}
}

// countDNP3 counts a DNP3 message.
func (tally *Tally) countDNP3(m *dnp3.Message) {
	t := &tally.DNP3
	switch m.Kind {
	case dnp3.KindApplication:
		t.Fragments++
		t.ByFC[m.FC]++
		if m.Truncated {
			t.Truncated++
		}
		if m.Dir == dnp3.Unsolicited {
			t.Unsolicited++
		}
	case dnp3.KindLink:
		t.LinkFrames++
	case dnp3.KindGarbage:
		t.Garbage++
	}
	if m.Malformed != 0 {
		t.Anomalous++
		if m.Anomalies&^dnp3.Misuse != 0 {
			t.Malformed++
		}
		for r := range t.ByReason {
			if m.Anomalies&(1<<r) != 0 {
				t.ByReason[r]++
			}
		}
	}
}

// Packet decodes one packet.
func (p *Pipeline) Packet(data []byte, ci *capture.Info) {
	p.src = min(max(ci.Source, 0), MaxSources-1)
	p.eng.Packet(ci.LinkType, ci.Timestamp, ci.Frame, data, ci.Length)
}

// Flush ends every open flow, then flushes the rule engine when it has a
// Flush method; call it at the end of a capture.
func (p *Pipeline) Flush() {
	p.eng.Flush()
	if f, ok := p.rules.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// Counters returns the dpi counters.
func (p *Pipeline) Counters() dpi.Counters { return p.eng.Counters() }

// Tally returns the message counts.
func (p *Pipeline) Tally() Tally { return p.tally }

// Summary is what a replay reports at the end.
type Summary struct {
	Files    int
	Packets  uint64
	Elapsed  time.Duration
	DPI      dpi.Counters
	Messages Tally
	Errors   []error // damaged files; the records before the damage were processed
}

// Replay runs every packet of src through a new pipeline, then flushes it.
// Damaged files are recorded in the summary, and reading goes on with the
// next file. It stops early when ctx is cancelled.
func Replay(ctx context.Context, src capture.Source, opts Options) (Summary, error) {
	p, err := New(opts)
	if err != nil {
		return Summary{}, err
	}
	return p.Replay(ctx, src)
}

// Replay runs every packet of src through p, then flushes it; see the
// function Replay. A capture.BatchSource is read a batch at a time.
func (p *Pipeline) Replay(ctx context.Context, src capture.Source) (Summary, error) {
	var s Summary
	start := time.Now()
	var err error
	if bs, ok := src.(capture.BatchSource); ok {
		err = p.replayBatches(ctx, bs, &s)
	} else {
		err = p.replayPackets(ctx, src, &s)
	}
	p.Flush()
	s.Elapsed = time.Since(start)
	s.DPI = p.Counters()
	s.Packets = s.DPI.Packets
	s.Messages = p.Tally()
	return s, err
}

// replayPackets reads src a packet at a time.
func (p *Pipeline) replayPackets(ctx context.Context, src capture.Source, s *Summary) error {
	var ci capture.Info
	for n := 0; ; n++ {
		if n&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		data, err := src.ReadPacket(&ci)
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			if err = s.damaged(err); err != nil {
				return err
			}
			continue
		}
		p.Packet(data, &ci)
	}
}

// replayBatches reads src a batch at a time, with no call a packet to
// read it.
func (p *Pipeline) replayBatches(ctx context.Context, src capture.BatchSource, s *Summary) error {
	var b capture.Batch
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch err := src.ReadBatch(&b); {
		case err == io.EOF:
			return nil
		case err != nil:
			if err = s.damaged(err); err != nil {
				return err
			}
			continue
		}
		for i := range b.Len() {
			p.Packet(b.Packet(i))
		}
	}
}

// damaged records a damaged file's error for the summary and returns nil,
// so that reading goes on with the next file; any other error it returns,
// to stop the replay.
func (s *Summary) damaged(err error) error {
	if fe := (*capture.FileError)(nil); errors.As(err, &fe) {
		s.Errors = append(s.Errors, err)
		return nil
	}
	return err
}

// NewStats is the stats message of a pipeline's counts: the dpi
// counters, the messages, the alerts by severity and those the alert
// budget suppressed. The caller fills in what only it knows: uptime,
// kernel drops, memory.
func NewStats(c dpi.Counters, t *Tally, alerts event.Severities, suppressed uint64, evictions map[string]uint64) *event.Stats {
	st := &event.Stats{
		Packets: c.Packets, Bytes: c.Bytes,
		DecodeErrors: map[string]uint64{proto.Modbus.String(): t.Malformed, proto.DNP3.String(): t.DNP3.Malformed},
		Messages:     map[string]uint64{proto.Modbus.String(): t.Messages, proto.DNP3.String(): t.DNP3.Fragments + t.DNP3.LinkFrames},
		Flows:        c.FlowsActive, FlowsCreated: c.FlowsCreated, FlowsEvicted: c.FlowsEvicted, Reassembly: c.BufferedBytes,
		Alerts: alerts, Suppressed: suppressed, Evictions: evictions,
	}
	for id, n := range t.Others {
		if n > 0 {
			st.Messages[proto.ID(id).String()] = n
		}
	}
	return st
}
