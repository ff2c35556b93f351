package uplink

// Helpers of the interop tests against a real mosquitto (mosquitto_test.go):
// a broker that can be stopped and restarted on the same port, a Tail that
// runs in the background, a plain subscriber that decodes the retained
// status, and polling with deadlines. The test PKI is testenv's.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapwatch/tapwatch/event"
	"github.com/tapwatch/tapwatch/internal/testenv"
)

// waitFor polls cond every 10 ms until it holds, and fails the test when
// it does not within d.
func pollUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openLater is the way to a broker that a publisher, set to addr, cannot
// take until open is called: a relay from addr to target, listening only
// from then on. A test subscribes at target first; a clean session then
// sees everything the publisher sends, whatever the phase of its backoff
// when the broker came up.
func openLater(t testing.TB, addr, target string) (open func()) {
	t.Helper()
	var (
		mu    sync.Mutex
		ln    net.Listener
		conns []net.Conn
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		for _, c := range conns {
			c.Close()
		}
	})
	return func() {
		t.Helper()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("relay %s to the broker: %v", addr, err)
		}
		mu.Lock()
		ln = l
		mu.Unlock()
		go func() {
			for {
				in, err := l.Accept()
				if err != nil {
					return
				}
				out, err := net.Dial("tcp", target)
				if err != nil {
					in.Close()
					continue
				}
				mu.Lock()
				conns = append(conns, in, out)
				mu.Unlock()
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					dst.Close()
					src.Close()
				}
				go pipe(out, in)
				go pipe(in, out)
			}
		}()
	}
}

// ---- tail ----

// tailer runs Tail in the background.
type tailer struct {
	out    tailOut
	rep    testenv.Buffer
	cancel context.CancelFunc
	done   chan struct{}
	reps   []SensorReport
	err    error
}

// tailOut is Tail's output, parsed as it is written (Tail writes one
// line per Write), so that polling it is cheap even under -race.
type tailOut struct {
	mu      sync.Mutex
	partial []byte
	lines   []tailLine // alerts, in Tail's order
	bad     []string   // lines that are not JSON
	sensors map[string]*tailSeen
}

// tailSeen is what Tail wrote of one sensor's alerts.
type tailSeen struct {
	n      int
	seqs   map[uint64]bool
	lo, hi uint64
}

// tailLine is an alert in Tail's output.
type tailLine struct {
	Kind   string `json:"kind"`
	Sensor string `json:"sensor"`
	Seq    uint64 `json:"seq"`
	raw    string
}

func (o *tailOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		l := string(o.partial[:i])
		o.partial = o.partial[i+1:]
		var x tailLine
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			o.bad = append(o.bad, fmt.Sprintf("%q: %v", l, err))
			continue
		}
		if x.Kind != event.KindAlert {
			continue
		}
		x.raw = l
		o.lines = append(o.lines, x)
		if o.sensors == nil {
			o.sensors = map[string]*tailSeen{}
		}
		s := o.sensors[x.Sensor]
		if s == nil {
			s = &tailSeen{seqs: map[uint64]bool{}, lo: x.Seq}
			o.sensors[x.Sensor] = s
		}
		s.n++
		s.seqs[x.Seq] = true
		s.lo, s.hi = min(s.lo, x.Seq), max(s.hi, x.Seq)
	}
	return len(p), nil
}

func startTail(t testing.TB, c TailConfig) *tailer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tailer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tl.done)
		tl.reps, tl.err = Tail(ctx, c, &tl.out, &tl.rep)
	}()
	t.Cleanup(func() {
		tl.cancel()
		<-tl.done
		if t.Failed() {
			t.Logf("tail wrote %s; its report:\n%s", tl.summary(), tl.rep.String())
		}
	})
	return tl
}

// stop ends Tail and returns its report of sensor.
func (tl *tailer) stop(t testing.TB, sensor string) SensorReport {
	t.Helper()
	tl.cancel()
	select {
	case <-tl.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not return within 10s of its context's end")
	}
	if tl.err != nil {
		t.Fatalf("Tail: %v", tl.err)
	}
	for _, r := range tl.reps {
		if r.Sensor == sensor {
			return r
		}
	}
	t.Fatalf("Tail reported nothing of sensor %s: %+v; report:\n%s", sensor, tl.reps, tl.rep.String())
	return SensorReport{}
}

// summary says, per sensor, how many alerts tail wrote and their seqs.
func (tl *tailer) summary() string {
	tl.out.mu.Lock()
	defer tl.out.mu.Unlock()
	var b strings.Builder
	for sensor, s := range tl.out.sensors {
		fmt.Fprintf(&b, "[%s: %d alerts, %d distinct seqs from %d to %d] ", sensor, s.n, len(s.seqs), s.lo, s.hi)
	}
	for _, l := range tl.out.bad {
		fmt.Fprintf(&b, "[not JSON: %s] ", l)
	}
	if b.Len() == 0 {
		return "no alert"
	}
	return b.String()
}

// alerts returns the alerts of sensor that Tail has written so far, in
// its order.
func (tl *tailer) alerts(t testing.TB, sensor string) []tailLine {
	t.Helper()
	tl.out.mu.Lock()
	defer tl.out.mu.Unlock()
	if len(tl.out.bad) > 0 {
		t.Fatalf("tail wrote lines that are not JSON: %v", tl.out.bad)
	}
	var out []tailLine
	for _, x := range tl.out.lines {
		if x.Sensor == sensor {
			out = append(out, x)
		}
	}
	return out
}

// seen reports how many distinct seqs of sensor Tail has written and the
// highest.
func (tl *tailer) seen(sensor string) (distinct int, hi uint64) {
	tl.out.mu.Lock()
	defer tl.out.mu.Unlock()
	if s := tl.out.sensors[sensor]; s != nil {
		return len(s.seqs), s.hi
	}
	return 0, 0
}

// orderCheck checks alerts in Tail's output order: every seq is higher
// than all before it, or a repeat of one already seen with the same
// content (a duplicate, at least once delivery). It returns the distinct
// seqs and the number of repeats.
func orderCheck(t testing.TB, as []tailLine) (seqs map[uint64]bool, dups uint64) {
	t.Helper()
	first := map[uint64]string{}
	var hi uint64
	for i, a := range as {
		if prev, ok := first[a.Seq]; ok {
			dups++
			if prev != a.raw {
				t.Errorf("line %d: seq %d reused with other content:\n  first %s\n  now   %s", i, a.Seq, prev, a.raw)
			}
			continue
		}
		if a.Seq <= hi {
			t.Errorf("line %d: seq %d after %d: out of order", i, a.Seq, hi)
		}
		first[a.Seq] = a.raw
		hi = max(hi, a.Seq)
	}
	seqs = map[uint64]bool{}
	for s := range first {
		seqs[s] = true
	}
	return seqs, dups
}

// ---- status subscriber ----

type statusMsg struct {
	event.Status
	retained bool
}

// statusSub subscribes to a sensor's status topic with a plain paho client
// and decodes each message with (*event.Status).UnmarshalMsg. It
// resubscribes after a reconnect, so that it survives a broker restart.
type statusSub struct {
	mu   sync.Mutex
	msgs []statusMsg
	errs []error
}

func subscribeStatus(t testing.TB, broker string, tc *tls.Config, topic string) *statusSub {
	t.Helper()
	s := &statusSub{}
	subscribed := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("status-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetOrderMatters(true).SetTLSConfig(tc)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			var st event.Status
			_, err := st.UnmarshalMsg(m.Payload())
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.errs = append(s.errs, fmt.Errorf("%s: %d bytes: %w", m.Topic(), len(m.Payload()), err))
				return
			}
			s.msgs = append(s.msgs, statusMsg{st, m.Retained()})
		})
		go func() {
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				select {
				case subscribed <- struct{}{}:
				default:
				}
			}
		}()
	})
	c := mqtt.NewClient(o)
	c.Connect()
	t.Cleanup(func() { c.Disconnect(100) })
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatalf("status subscriber: no SUBACK for %s within 10s", topic)
	}
	return s
}

// len is the number of statuses received so far.
func (s *statusSub) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// find returns the first status from index from on for which ok holds.
func (s *statusSub) find(from int, ok func(statusMsg) bool) (statusMsg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs[min(from, len(s.msgs)):] {
		if ok(m) {
			return m, true
		}
	}
	return statusMsg{}, false
}

func (s *statusSub) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, m := range s.msgs {
		fmt.Fprintf(&b, "  retained=%v state=%s reason=%q uplink=%s seq=%d spool_depth=%d spool_drops=%d\n",
			m.retained, m.State, m.Reason, m.Uplink, m.Seq, m.SpoolDepth, m.SpoolDrops)
	}
	for _, e := range s.errs {
		fmt.Fprintf(&b, "  undecodable: %v\n", e)
	}
	return b.String()
}

// waitStatus waits for a status, from index from on, for which ok holds
// and returns it.
func (s *statusSub) waitStatus(t testing.TB, d time.Duration, from int, what string, ok func(statusMsg) bool) statusMsg {
	t.Helper()
	var m statusMsg
	deadline := time.Now().Add(d)
	for {
		var found bool
		if m, found = s.find(from, ok); found {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for a status: %s; statuses received:\n%s", d, what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- publisher ----

// startPublisher creates and starts a publisher on stateDir; the returned
// function closes it (once; the test's cleanup closes it otherwise).
func startPublisher(t testing.TB, cfg Config, stateDir string) (*Publisher, func()) {
	t.Helper()
	p, q, err := New(cfg, stateDir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if q != nil {
		t.Fatalf("spool quarantined: %v", q)
	}
	p.Start()
	var once sync.Once
	closeP := func() {
		once.Do(func() {
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(closeP)
	return p, closeP
}

// spooled waits until every alert handed to p is in its spool and returns
// p's state then.
func waitSpooled(t testing.TB, p *Publisher) State {
	t.Helper()
	var st State
	pollUntil(t, 10*time.Second, "the alerts to be spooled", func() bool {
		st = p.State()
		return st.Queued == 0
	})
	return st
}
