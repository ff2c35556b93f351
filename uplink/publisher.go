package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapwatch/tapwatch/event"
)

// queueSize is how many alerts and assets may wait between the pipeline
// and the spool writer. The pipeline blocks only when the disk is so slow
// that this many are waiting: losing an alert is worse than stalling the
// capture, whose kernel ring then drops packets and counts them. A full
// or failing disk does not make the writer wait: the spool drops its
// oldest messages, or holds new ones in memory.
const queueSize = 4096

// closeWait bounds how long Close waits for the spool writer (a disk that
// hangs in a sync) before it gives up on what is not yet spooled.
const closeWait = 10 * time.Second

// ackTimeout is how long the forwarder waits for a PUBACK before it gives
// up on the connection and reconnects.
const ackTimeout = 30 * time.Second

// Publisher sends the sensor's events to the broker. Alert and Asset
// never block for long and never lose a message: they spool it. Create it
// with New, then Start it.
type Publisher struct {
	cfg     Config
	log     *slog.Logger
	version string
	started time.Time
	spool   *Spool

	in      chan pending
	written chan struct{} // cap 1: the spool has new messages
	statusC chan struct{} // cap 1: the status changed
	statsC  chan []byte   // cap 1: a stats payload to publish at QoS 0

	mu          sync.Mutex
	status      event.Status // the fields the owner sets
	connected   bool
	lastErr     error
	statsSkip   uint64
	published   uint64
	connections uint64
	writerDone  chan struct{}
	forwardDone chan struct{}
	cancel      context.CancelFunc
	queued      atomic.Int64 // handed to Alert/Asset and not yet spooled
	statsSrc    func() *event.Stats
	onAck       func(seq uint64) // tests and benchmarks: called for each PUBACK, in order
	ackedTo     atomic.Uint64    // every seq up to this one has its PUBACK
	committedTo atomic.Uint64    // and is removed from the spool up to this one
	ackWake     chan struct{}    // cap 1: ackedTo grew
	ackerDone   chan struct{}

	// idOf maps the engine's alert ids to wire ids (the seq of the first
	// message of the alert), in two generations so that it stays bounded.
	idCur, idOld map[uint64]uint64
}

type pending struct {
	alert *event.Alert
	key   uint64 // the engine's id of the alert
	first bool   // the first message of this alert (not a folded repeat)
	asset *event.Asset
}

// New opens the spool in stateDir and prepares a publisher; it does not
// connect until Start. quarantined reports what the spool found damaged
// or could not use (to report; the publisher works).
func New(cfg Config, stateDir, version string, log *slog.Logger) (p *Publisher, quarantined error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg = cfg.withDefaults()
	if _, err := cfg.TLS.tlsConfig(); err != nil {
		return nil, nil, err
	}
	if _, err := cfg.password(); err != nil {
		return nil, nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newPublisher(cfg, stateDir, version, log, osFS{})
}

// newPublisher is New with the spool on fs (tests inject faults).
func newPublisher(cfg Config, stateDir, version string, log *slog.Logger, fs fileSystem) (p *Publisher, quarantined error, err error) {
	sp, quarantined, err := openSpool(fs, time.Now, stateDir, cfg.Spool, log)
	if err != nil {
		return nil, quarantined, err
	}
	p = &Publisher{
		cfg: cfg, log: log, version: version, started: time.Now(), spool: sp,
		in: make(chan pending, queueSize), written: make(chan struct{}, 1),
		statusC: make(chan struct{}, 1), statsC: make(chan []byte, 1), ackWake: make(chan struct{}, 1),
		idCur: map[uint64]uint64{}, idOld: map[uint64]uint64{},
	}
	p.status.State = event.StateStarting
	return p, quarantined, nil
}

// Start starts the spool writer and the forwarder.
func (p *Publisher) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.writerDone = make(chan struct{})
	p.forwardDone = make(chan struct{})
	p.ackerDone = make(chan struct{})
	if o := p.spool.Stats().Oldest; o > 0 {
		p.ackedTo.Store(o - 1)
		p.committedTo.Store(o - 1)
	}
	go p.writer()
	go p.forward(ctx)
	go p.acker(ctx)
}

// Alert spools an alert. key is the engine's id of the alert, the same
// for its folded repeats; first is false for those repeats. The header
// fields and the id are filled in here.
func (p *Publisher) Alert(a *event.Alert, key uint64, first bool) {
	p.queued.Add(1)
	p.in <- pending{alert: a, key: key, first: first}
}

// Asset spools an asset message (retained on …/asset/{ip}).
func (p *Publisher) Asset(a *event.Asset) {
	p.queued.Add(1)
	p.in <- pending{asset: a}
}

// SetStatus sets the owner's fields of the status (state, mode, links,
// unacknowledged alerts, reason) and publishes it. Header, version,
// uptime, uplink and spool fields are filled in when it is sent.
func (p *Publisher) SetStatus(s event.Status) {
	p.mu.Lock()
	p.status = s
	p.mu.Unlock()
	select {
	case p.statusC <- struct{}{}:
	default:
	}
}

// Stats publishes s at QoS 0 if connected; otherwise, or when the
// previous one is still waiting, it is skipped and counted (stats never
// touch the disk). The header and spool fields are filled in here.
func (p *Publisher) Stats(s *event.Stats) {
	st := p.spool.Stats()
	s.SetHeader(p.cfg.Sensor, p.cfg.Site, st.LastSeq, time.Now().UTC())
	s.SpoolDepth, s.SpoolDrops = st.Depth, st.Drops
	b, err := s.MarshalMsg(nil)
	if err != nil {
		p.log.Error("encoding stats", "err", err)
		return
	}
	p.mu.Lock()
	connected := p.connected
	p.mu.Unlock()
	if connected {
		select {
		case p.statsC <- b:
			return
		default:
		}
	}
	p.mu.Lock()
	p.statsSkip++
	p.mu.Unlock()
}

// SetStatsSource makes the publisher send fn's stats every
// StatsInterval while connected (fn is called on the publisher's
// goroutine, so it must be safe to call from there). Call it before
// Start.
func (p *Publisher) SetStatsSource(fn func() *event.Stats) {
	p.mu.Lock()
	p.statsSrc = fn
	p.mu.Unlock()
}

// State is what the publisher reports about itself.
type State struct {
	Connected    bool
	LastError    error // of the last connection attempt or session
	SpoolError   error // why the spool cannot write to disk now (messages are held in memory); nil when it can
	Spool        SpoolStats
	Queued       int64  // waiting to be spooled
	Published    uint64 // spooled messages acknowledged by the broker
	StatsSkipped uint64 // stats not sent because the broker was unreachable
	Connections  uint64 // connections made to the broker, the first one included
}

// State returns the publisher's state now.
func (p *Publisher) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	sp := p.spool.Stats()
	return State{Connected: p.connected, LastError: p.lastErr, SpoolError: sp.DiskErr, Spool: sp,
		Queued: p.queued.Load(), Published: p.published, StatsSkipped: p.statsSkip, Connections: p.connections}
}

// Flush waits until every message handed over so far has been spooled
// and acknowledged by the broker, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if p.queued.Load() == 0 && p.spool.Stats().Depth == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			st := p.State()
			return fmt.Errorf("%d messages not yet acknowledged by the broker: %d in the spool on disk, sent after the next start; %d held in memory because the disk fails, lost at a stop; %d not yet spooled: %w",
				st.Spool.Depth+uint64(st.Queued), st.Spool.Depth-st.Spool.InMemory, st.Spool.InMemory, st.Queued, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops the publisher: what was handed over is spooled, the status
// goes out as offline (reason "stopped") if connected, and the connection
// is closed cleanly, so that the broker does not publish the Last Will.
// What the broker has not acknowledged stays in the spool for next time,
// but for messages held in memory because the disk failed: their number
// is logged.
func (p *Publisher) Close() error {
	if p.cancel == nil {
		return p.spool.Close()
	}
	close(p.in)
	select {
	case <-p.writerDone:
	case <-time.After(closeWait):
		// The spool's lock is held by a writer stuck in the disk: what it
		// has not spooled is lost, and so is closing the spool cleanly.
		p.log.Error("uplink: the spool writer did not finish; messages not yet spooled are lost", "waited", closeWait, "messages", p.queued.Load())
		p.cancel()
		return errors.New("spool writer stuck")
	}
	p.cancel()
	<-p.forwardDone
	<-p.ackerDone
	if err := p.spool.Ack(p.ackedTo.Load()); err != nil {
		p.log.Error("acknowledging in the spool", "err", err)
	}
	if n := p.spool.Stats().InMemory; n > 0 {
		p.log.Error("uplink: messages held in memory because the disk fails are lost at this stop; the security center sees a gap", "messages", n)
	}
	return p.spool.Close()
}

// ---- spool writer ----

func (p *Publisher) writer() {
	defer close(p.writerDone)
	batch := make([]pending, 0, 256)
	for first := range p.in {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < cap(batch) {
			select {
			case x, ok := <-p.in:
				if !ok {
					break drain
				}
				batch = append(batch, x)
			default:
				break drain
			}
		}
		p.spoolBatch(batch)
	}
}

// spoolBatch spools a batch, synced once.
func (p *Publisher) spoolBatch(batch []pending) {
	items := make([]Item, len(batch))
	now := time.Now().UTC()
	for i := range batch {
		x := batch[i]
		switch {
		case x.alert != nil:
			a := x.alert
			items[i] = Item{Topic: p.cfg.Topic(event.KindAlert), Encode: func(seq uint64, b []byte) []byte {
				a.SetHeader(p.cfg.Sensor, p.cfg.Site, seq, now)
				a.ID = p.wireID(x.key, x.first, seq)
				out, err := a.MarshalMsg(b)
				if err != nil {
					p.log.Error("encoding an alert", "err", err)
					return b
				}
				return out
			}}
		case x.asset != nil:
			a := x.asset
			items[i] = Item{Topic: p.cfg.Topic(event.KindAsset) + "/" + a.IP, Retain: true, Encode: func(seq uint64, b []byte) []byte {
				a.SetHeader(p.cfg.Sensor, p.cfg.Site, seq, now)
				out, err := a.MarshalMsg(b)
				if err != nil {
					p.log.Error("encoding an asset", "err", err)
					return b
				}
				return out
			}}
		}
	}
	// Every message gets its seq here, whatever the disk does: a full one
	// makes the spool drop its oldest messages, a failing one makes it
	// hold them in memory (and report it in its stats).
	p.spool.Append(items)
	p.queued.Add(-int64(len(batch)))
	select {
	case p.written <- struct{}{}:
	default:
	}
}

// wireID gives an alert its id on the wire: the seq of its first message,
// which is unique per sensor across restarts; folded repeats carry the id
// of their first message while it is remembered (the last 8,192 alerts at
// least), otherwise their own seq.
func (p *Publisher) wireID(key uint64, first bool, seq uint64) uint64 {
	if !first {
		if id, ok := p.idCur[key]; ok {
			return id
		}
		if id, ok := p.idOld[key]; ok {
			return id
		}
	}
	if len(p.idCur) >= 8192 {
		p.idOld, p.idCur = p.idCur, make(map[uint64]uint64, 8192)
	}
	p.idCur[key] = seq
	return seq
}

// ---- forwarder ----

var errLost = errors.New("connection lost")

func (p *Publisher) setConnected(c bool, err error) {
	p.mu.Lock()
	changed := p.connected != c || (err != nil && (p.lastErr == nil || p.lastErr.Error() != err.Error()))
	p.connected, p.lastErr = c, err
	if c {
		p.connections++
	}
	p.mu.Unlock()
	if changed {
		if c {
			p.log.Info("uplink connected")
		} else if err != nil {
			p.log.Warn("uplink disconnected", "err", err)
		}
	}
}

func (p *Publisher) forward(ctx context.Context) {
	defer close(p.forwardDone)
	backoff := p.cfg.BackoffMin
	for ctx.Err() == nil {
		lost := make(chan error, 1)
		c, err := p.connect(ctx, lost)
		if err != nil {
			p.setConnected(false, err)
			p.log.Debug("uplink connect failed", "err", err, "retry_in", backoff)
			var d time.Duration
			d, backoff = retryWait(backoff, p.cfg.BackoffMax)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		backoff = p.cfg.BackoffMin
		p.setConnected(true, nil)
		err = p.session(ctx, c, lost)
		if ctx.Err() != nil {
			// A clean stop: say so, then disconnect (no Last Will).
			p.publishStatus(c, event.StateOffline, "stopped", 2*time.Second)
			c.Disconnect(500)
			p.setConnected(false, nil)
			return
		}
		c.Disconnect(0)
		p.setConnected(false, err)
	}
}

// retryWait is the wait before the next connection attempt, 50-100 % of
// backoff (jitter, so that many sensors do not retry in step), and the
// backoff after it: doubled, up to most.
func retryWait(backoff, most time.Duration) (wait, next time.Duration) {
	return backoff/2 + rand.N(backoff/2+1), min(2*backoff, most)
}

func (p *Publisher) connect(ctx context.Context, lost chan error) (mqtt.Client, error) {
	tc, err := p.cfg.TLS.tlsConfig()
	if err != nil {
		return nil, err
	}
	pw, err := p.cfg.password()
	if err != nil {
		return nil, err
	}
	will, err := p.statusPayload(event.StateOffline, "connection lost")
	if err != nil {
		return nil, err
	}
	o := mqtt.NewClientOptions()
	for _, b := range p.cfg.Brokers {
		o.AddBroker(b)
	}
	o.SetClientID(p.cfg.Sensor).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetResumeSubs(false).SetKeepAlive(p.cfg.KeepAlive).SetPingTimeout(10*time.Second).
		SetConnectTimeout(15*time.Second).SetWriteTimeout(15*time.Second).SetTLSConfig(tc).
		SetBinaryWill(p.cfg.Topic(event.KindStatus), will, 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if p.cfg.Username != "" {
		o.SetUsername(p.cfg.Username).SetPassword(pw)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.Disconnect(0)
		return nil, errors.New("connect: no CONNACK within 30s")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %v: %w", p.cfg.Brokers, err)
	}
	return c, nil
}

// statusPayload encodes the status with state and reason (empty: the
// owner's).
func (p *Publisher) statusPayload(state, reason string) ([]byte, error) {
	p.mu.Lock()
	s := p.status
	connected := p.connected
	p.mu.Unlock()
	st := p.spool.Stats()
	s.SetHeader(p.cfg.Sensor, p.cfg.Site, st.LastSeq, time.Now().UTC())
	s.Version = p.version
	s.Uptime = time.Since(p.started).Seconds()
	s.Uplink = event.UplinkDisconnected
	if state == "" || (connected && state != event.StateOffline) {
		s.Uplink = event.UplinkConnected // sent in a session
	}
	s.SpoolDepth, s.SpoolBytes, s.SpoolDrops = st.Depth, st.Bytes, st.Drops
	s.SpoolCapacity, s.SpoolMemory = st.Capacity, st.InMemory
	if state != "" {
		s.State, s.Reason = state, reason
	}
	return s.MarshalMsg(nil)
}

// publishStatus publishes the retained status and waits up to d for the
// PUBACK.
func (p *Publisher) publishStatus(c mqtt.Client, state, reason string, d time.Duration) error {
	b, err := p.statusPayload(state, reason)
	if err != nil {
		return err
	}
	tok := c.Publish(p.cfg.Topic(event.KindStatus), 1, true, b)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-time.After(d):
		return errors.New("status: no PUBACK")
	}
}

type flight struct {
	seq uint64
	tok mqtt.Token
}

// session publishes while connected: the status, then the spool in
// order with up to Window messages in flight, acknowledging them in the
// spool as PUBACKs come in order. It returns when the connection is lost,
// a PUBACK does not come, or ctx ends.
func (p *Publisher) session(ctx context.Context, c mqtt.Client, lost chan error) error {
	select {
	case <-p.statusC: // sent now anyway
	default:
	}
	if err := p.publishStatus(c, "", "", ackTimeout); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	var inflight []flight
	// The next seq to publish: after the last PUBACK, even if the spool
	// has not removed it yet.
	next := p.ackedTo.Load() + 1
	var head uint64 // seq of the oldest message in flight, for its deadline
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	var statsTick <-chan time.Time
	p.mu.Lock()
	src := p.statsSrc
	p.mu.Unlock()
	if src != nil {
		t := time.NewTicker(p.cfg.StatsInterval)
		defer t.Stop()
		statsTick = t.C
	}
	for {
		// At most Window in flight, and at most Window acknowledged but
		// not yet removed from the spool: after a crash no more than
		// twice the window goes out again.
		room := p.cfg.Window - len(inflight)
		if pending := int(p.ackedTo.Load() - p.committedTo.Load()); pending >= p.cfg.Window {
			room = 0
		}
		if room > 0 {
			es, err := p.spool.Peek(next, room)
			if err != nil {
				p.log.Error("reading the spool", "err", err)
			}
			for _, e := range es {
				var tok mqtt.Token = doneToken{}
				if !e.Dropped { // a dropped one is only acknowledged, in its turn
					tok = c.Publish(e.Topic, 1, e.Retain, e.Payload)
				}
				inflight = append(inflight, flight{e.Seq, tok})
				next = e.Seq + 1
			}
		}
		var headDone <-chan struct{}
		if len(inflight) > 0 {
			headDone = inflight[0].tok.Done()
			if inflight[0].seq != head {
				// A new oldest message: its PUBACK is due within
				// ackTimeout. Other wake-ups leave the deadline alone.
				head = inflight[0].seq
				timer.Reset(ackTimeout)
			}
		}
		select {
		case <-headDone:
			n := 0
			for n < len(inflight) && isDone(inflight[n].tok) {
				if err := inflight[n].tok.Error(); err != nil {
					return fmt.Errorf("publish seq %d: %w", inflight[n].seq, err)
				}
				n++
			}
			if p.onAck != nil {
				for _, f := range inflight[:n] {
					p.onAck(f.seq)
				}
			}
			p.ack(inflight[n-1].seq)
			p.mu.Lock()
			p.published += uint64(n)
			p.mu.Unlock()
			inflight = inflight[n:]
		case <-p.written:
		case <-p.statusC:
			if err := p.publishStatus(c, "", "", ackTimeout); err != nil {
				return fmt.Errorf("status: %w", err)
			}
		case b := <-p.statsC:
			c.Publish(p.cfg.Topic(event.KindStats), 0, false, b) // QoS 0: nothing to wait for
		case <-statsTick:
			if s := src(); s != nil {
				s.Interval = p.cfg.StatsInterval.Seconds() // tail warns when the next is overdue
				p.Stats(s)
			}
		case err := <-lost:
			return fmt.Errorf("%w: %v", errLost, err)
		case <-timer.C:
			if len(inflight) > 0 {
				return fmt.Errorf("no PUBACK for seq %d within %v", inflight[0].seq, ackTimeout)
			}
		case <-ctx.Done():
			select {
			case b := <-p.statsC: // the last stats of a clean stop
				c.Publish(p.cfg.Topic(event.KindStats), 0, false, b)
			default:
			}
			// Wait briefly for what is in flight, so that a clean stop
			// does not resend it next time.
			deadline := time.After(2 * time.Second)
			for len(inflight) > 0 {
				select {
				case <-inflight[0].tok.Done():
				case <-deadline:
					return nil
				}
				if inflight[0].tok.Error() != nil {
					return nil
				}
				p.ack(inflight[0].seq)
				inflight = inflight[1:]
			}
			return nil
		}
	}
}

// ack records that every message up to seq has its PUBACK. The acker
// removes them from the spool on its own goroutine, so that the fsync of
// that transaction does not hold up publishing; several PUBACKs that
// come during one commit go in the next. A crash before the commit only
// makes those messages go out again (at least once).
func (p *Publisher) ack(seq uint64) {
	if seq > p.ackedTo.Load() {
		p.ackedTo.Store(seq)
	}
	select {
	case p.ackWake <- struct{}{}:
	default:
	}
}

func (p *Publisher) acker(ctx context.Context) {
	defer close(p.ackerDone)
	done := p.committedTo.Load()
	for {
		select {
		case <-p.ackWake:
		case <-ctx.Done():
			return
		}
		if seq := p.ackedTo.Load(); seq > done {
			if err := p.spool.Ack(seq); err != nil {
				p.log.Error("acknowledging in the spool", "err", err)
				continue
			}
			done = seq
			p.committedTo.Store(seq)
			select { // the forwarder may be waiting for room
			case p.written <- struct{}{}:
			default:
			}
		}
	}
}

// doneToken stands for a message that is not published: done, no error.
type doneToken struct{}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { return closedChan }
func (doneToken) Error() error                   { return nil }

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// Health is what the daemon's health needs of the publisher: whether it
// is connected, how full the spool is (the larger of its fill by count
// and by bytes, 0 to 1, against the space it may take now), and why it
// cannot write to disk, if it cannot.
func (p *Publisher) Health() (connected bool, spoolFull float64, spoolErr error) {
	st := p.State()
	sp := st.Spool
	full := float64(sp.Depth) / float64(sp.Limits.MaxMessages)
	if sp.Capacity > 0 {
		full = max(full, float64(sp.Bytes)/float64(sp.Capacity))
	}
	return st.Connected, full, st.SpoolError
}
