package uplink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/tinylib/msgp/msgp"

	"github.com/tapwatch/tapwatch/event"
)

// TailConfig is what tapwatch tail subscribes to.
type TailConfig struct {
	Brokers      []string
	TLS          TLSConfig
	Username     string
	PasswordFile string
	Plaintext    bool
	TopicPrefix  string   // default tapwatch/v1
	Site, Sensor string   // empty: every site, every sensor
	Kinds        []string // empty: every kind
	// ClientID, when set, makes the session persistent: the broker keeps
	// the subscription and queues messages while tail is away, so that a
	// restarted tail sees what it missed.
	ClientID string
	Count    int // stop after this many messages (0: never)
	// onConnect, for tests, runs first on each connection, before the
	// subscription is sent.
	onConnect func()
	// Format is FormatJSON (the default when empty) or FormatText;
	// Colour colours the severities of FormatText (for a terminal).
	Format string
	Colour bool
	// Observe, when set, is called with each message written (an
	// *event.Alert, *event.Status, *event.Asset or *event.Stats; not the
	// kinds subscribed to but not asked for, nor a status text leaves
	// out), after it is written, one at a time, on paho's goroutine; the
	// demo keeps its tally this way. It must not block.
	Observe func(msg any, retained bool)
}

// Topics returns the subscriptions of c.
func (c TailConfig) Topics() []string {
	prefix := c.TopicPrefix
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	site, sensor := c.Site, c.Sensor
	if site == "" {
		site = "+"
	}
	if sensor == "" {
		sensor = "+"
	}
	kinds := c.Kinds
	if len(kinds) == 0 {
		kinds = event.Kinds
	}
	var out []string
	for _, k := range kinds {
		t := prefix + "/" + site + "/" + sensor + "/" + k
		if k == event.KindAsset {
			t += "/+"
		}
		out = append(out, t)
	}
	return out
}

// subscriptions are the topics Tail subscribes to: those of the kinds
// asked for; both alerts and assets when either is, because they share
// the seq numbers whose gaps Tail reports; and always status and stats,
// for the watch of each sensor's stats, whatever Tail prints.
func (c TailConfig) subscriptions() []string {
	if len(c.Kinds) == 0 {
		return c.Topics()
	}
	kinds := slices.Clone(c.Kinds)
	need := []string{event.KindStatus, event.KindStats}
	if slices.Contains(kinds, event.KindAlert) || slices.Contains(kinds, event.KindAsset) {
		need = append(need, event.KindAlert, event.KindAsset)
	}
	for _, k := range need {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	c.Kinds = kinds
	return c.Topics()
}

// shows reports whether Tail prints messages of kind: every kind
// unless Kinds lists some. A kind newer than this tail counts as asked
// for when Kinds is empty.
func (c TailConfig) shows(kind string) bool {
	return len(c.Kinds) == 0 || slices.Contains(c.Kinds, kind)
}

// Validate checks c; errors name the flag's field.
func (c TailConfig) Validate() error {
	cfg := Config{Brokers: c.Brokers, Site: "x", Sensor: "x", TopicPrefix: c.TopicPrefix, TLS: c.TLS,
		Username: c.Username, PasswordFile: c.PasswordFile, Plaintext: c.Plaintext}
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, k := range c.Kinds {
		if !slices.Contains(event.Kinds, k) {
			errs = append(errs, fmt.Errorf("kinds: %q is not one of %s", k, strings.Join(event.Kinds, ", ")))
		}
	}
	if c.Site != "" {
		if err := checkLevel(c.Site); err != nil {
			errs = append(errs, fmt.Errorf("site: %v", err))
		}
	}
	if c.Sensor != "" {
		if err := checkLevel(c.Sensor); err != nil {
			errs = append(errs, fmt.Errorf("sensor: %v", err))
		}
	}
	if c.Format != "" && c.Format != FormatJSON && c.Format != FormatText {
		errs = append(errs, fmt.Errorf("format: %q is not %s or %s", c.Format, FormatJSON, FormatText))
	}
	return errors.Join(errs...)
}

// SensorReport is what tail saw of one sensor's spooled messages (alerts
// and assets): seq must grow by one per message.
type SensorReport struct {
	Site, Sensor string
	Received     uint64 // spooled messages received live (not retained), duplicates included
	First, Max   uint64 // lowest seq at the start, highest seen
	Missing      uint64 // seq numbers skipped and not received since
	Duplicates   uint64
	Late         uint64 // received after they had been reported missing
	Announced    uint64 // the highest seq a live (not retained) status or stats message announced
}

// Unreceived is how many messages the sensor announced after the last one
// received; 0 until a spooled message was received live.
func (r SensorReport) Unreceived() uint64 {
	if r.Received == 0 || r.Announced <= r.Max {
		return 0
	}
	return r.Announced - r.Max
}

// Complete reports whether nothing is missing: no gap, and every seq the
// sensor announced was received.
func (r SensorReport) Complete() bool { return r.Missing == 0 && r.Unreceived() == 0 }

type tracker struct {
	SensorReport
	started bool
	missing map[uint64]struct{} // bounded by maxMissing
}

const maxMissing = 1 << 20

func (t *tracker) add(seq uint64, report func(string, ...any)) {
	t.Received++
	name := t.Site + "/" + t.Sensor
	switch {
	case !t.started:
		t.started, t.First, t.Max = true, seq, seq
	case seq == t.Max+1:
		t.Max = seq
	case seq > t.Max+1:
		lo, hi := t.Max+1, seq-1
		n := hi - lo + 1
		t.Missing += n
		if len(t.missing)+int(min(n, maxMissing)) <= maxMissing {
			for s := lo; s <= hi; s++ {
				t.missing[s] = struct{}{}
			}
		}
		if n == 1 {
			report("%s: gap: seq %d missing", name, lo)
		} else {
			report("%s: gap: seq %d-%d missing (%d)", name, lo, hi, n)
		}
		t.Max = seq
	default: // seq <= t.Max
		if _, ok := t.missing[seq]; ok {
			delete(t.missing, seq)
			t.Missing--
			t.Late++
			report("%s: seq %d arrived late (%d still missing)", name, seq, t.Missing)
			break
		}
		if seq < t.First {
			// Older than anything seen: a message from before tail
			// started, resent after a reconnect.
			t.First = seq
			break
		}
		t.Duplicates++
		report("%s: duplicate seq %d (%d duplicates)", name, seq, t.Duplicates)
	}
}

// Tail subscribes and writes each message to out as a JSON line, with
// the field names of the wire schema (the same as tapwatch replay's
// alerts), or with FormatText as text for people, and reports gaps and
// duplicates of each sensor's seq to report as they happen. It also
// writes to out, whatever the kinds asked for, a line of its own when a
// sensor's periodic stats are overdue and when they resume. It returns
// the per-sensor reports when ctx ends or Count messages have arrived; an
// error when the broker refused the first connection, or none was made.
func Tail(ctx context.Context, c TailConfig, out, report io.Writer) ([]SensorReport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tc, err := c.TLS.tlsConfig()
	if err != nil {
		return nil, err
	}
	pw, err := Config{PasswordFile: c.PasswordFile}.password()
	if err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		trackers = map[string]*tracker{}
		n        int
		werr     error
		done     = make(chan struct{})
		once     sync.Once
		watch    = newStatsWatch()
		rewatch  = make(chan struct{}, 1) // a deadline of watch may have changed
	)
	var text *textFormatter
	if c.Format == FormatText {
		text = newTextFormatter(c.Colour, c.shows(event.KindAlert))
	}
	say := func(format string, a ...any) { fmt.Fprintf(report, "tapwatch tail: "+format+"\n", a...) }
	write := func(line []byte) { // with mu held
		if werr == nil {
			_, werr = out.Write(append(line, '\n'))
		}
	}
	notify := func(ns ...*statsNotice) { // with mu held
		for _, n := range ns {
			if text != nil {
				write(text.notice(n))
			} else {
				write(n.json())
			}
		}
	}
	poke := func() {
		select {
		case rewatch <- struct{}{}:
		default:
		}
	}
	track := func(h *event.Header) *tracker {
		k := h.Site + "/" + h.Sensor
		t := trackers[k]
		if t == nil {
			t = &tracker{SensorReport: SensorReport{Site: h.Site, Sensor: h.Sensor}, missing: map[uint64]struct{}{}}
			trackers[k] = t
		}
		return t
	}
	handle := func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		if c.Count > 0 && n >= c.Count {
			return
		}
		line, h, v, err := decode(m.Payload())
		if err != nil {
			say("%s: undecodable message (%d bytes): %v", m.Topic(), len(m.Payload()), err)
			return
		}
		switch h.Kind {
		case event.KindAlert, event.KindAsset:
			if !m.Retained() {
				track(&h).add(h.Seq, say)
			}
		case event.KindStatus, event.KindStats:
			if t := track(&h); !m.Retained() && h.Seq > t.Announced {
				t.Announced = h.Seq
			}
		}
		switch v := v.(type) {
		case *event.Stats:
			if !m.Retained() {
				if n := watch.stats(h.Site, h.Sensor, v.Interval, time.Now()); n != nil {
					notify(n)
				}
				poke()
			}
		case *event.Status:
			if v.State == event.StateOffline && !m.Retained() {
				watch.offline(h.Site, h.Sensor, v.Reason, time.Now())
			}
		}
		if !c.shows(h.Kind) {
			if text != nil && v != nil {
				text.note(v) // an asset still names the ends of alerts
			}
			return
		}
		if text != nil && v != nil {
			line = text.format(v, m.Retained())
		}
		if line == nil {
			return // a status with nothing new to say in text
		}
		write(line)
		if c.Observe != nil && v != nil {
			c.Observe(v, m.Retained())
		}
		n++
		if c.Count > 0 && n >= c.Count {
			once.Do(func() { close(done) })
		}
	}
	var connected atomic.Bool // once connected, paho's reconnecting is left alone
	o := mqtt.NewClientOptions()
	for _, b := range c.Brokers {
		o.AddBroker(b)
	}
	id := c.ClientID
	if id == "" {
		id = fmt.Sprintf("tapwatch-tail-%d", time.Now().UnixNano())
	}
	topics := c.subscriptions()
	subs := map[string]byte{}
	for _, t := range topics {
		subs[t] = 1
	}
	o.SetClientID(id).SetCleanSession(c.ClientID == "").SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(5 * time.Second).SetOrderMatters(true).
		SetTLSConfig(tc).SetKeepAlive(30 * time.Second).SetConnectTimeout(15 * time.Second).
		// A persistent session's queued messages arrive right after the
		// CONNACK, before the subscription below has registered handle
		// for its topics; paho leaves a message with no handler
		// unacknowledged, and the broker then holds the whole session
		// back behind the unacknowledged window. The default handler
		// takes those first messages.
		SetDefaultPublishHandler(handle).
		SetOnConnectHandler(func(cl mqtt.Client) {
			connected.Store(true)
			mu.Lock()
			watch.rearm(time.Now())
			mu.Unlock()
			poke()
			if c.onConnect != nil {
				c.onConnect()
			}
			tok := cl.SubscribeMultiple(subs, handle)
			go func() {
				if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
					mu.Lock()
					say("subscribe %v: %v", topics, tok.Error())
					mu.Unlock()
				}
			}()
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			mu.Lock()
			say("connection lost (%v); reconnecting", err)
			watch.pause()
			mu.Unlock()
		})
	if c.Username != "" {
		o.SetUsername(c.Username).SetPassword(pw)
	}
	// Until it has once connected, a refusal (of the certificate, the
	// credentials, the client id) ends Tail with the reason; a broker that
	// cannot be reached is said once and tried again, as paho does after
	// a connection was lost.
	failed := make(chan error, 1)
	o.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		if f, ok := n.(mqtt.ConnectionNotificationFailed); ok && !connected.Load() {
			select {
			case failed <- f.Reason:
			default:
			}
		}
	})
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	stillConnecting := time.NewTimer(10 * time.Second)
	defer stillConnecting.Stop()
	tokDone := tok.Done() // with ConnectRetry, closed once connected
	saidUnreachable := false
	overdue := time.NewTimer(time.Hour)
	overdue.Stop()
	defer overdue.Stop()
	checkOverdue := func() {
		mu.Lock()
		ns, next := watch.due(time.Now())
		notify(ns...)
		mu.Unlock()
		overdue.Stop()
		if !next.IsZero() {
			overdue.Reset(time.Until(next))
		}
	}
wait:
	for {
		select {
		case <-rewatch:
			checkOverdue()
		case <-overdue.C:
			checkOverdue()
		case <-tokDone:
			if err := tok.Error(); err != nil {
				return nil, connectError(c, err)
			}
			tokDone = nil
			stillConnecting.Stop()
		case err := <-failed:
			if refused(c, err) {
				cl.Disconnect(0)
				return nil, connectError(c, err)
			}
			if !saidUnreachable {
				saidUnreachable = true
				mu.Lock()
				say("cannot reach %v (%v); trying again", c.Brokers, err)
				mu.Unlock()
			}
		case <-stillConnecting.C:
			mu.Lock()
			say("still connecting to %v", c.Brokers)
			mu.Unlock()
		case <-ctx.Done():
			break wait
		case <-done:
			break wait
		}
	}
	cl.Disconnect(250)
	if !connected.Load() {
		return nil, fmt.Errorf("never connected to %v", c.Brokers)
	}
	mu.Lock()
	defer mu.Unlock()
	var reps []SensorReport
	for _, t := range trackers {
		reps = append(reps, t.SensorReport)
	}
	sort.Slice(reps, func(i, j int) bool {
		return reps[i].Site+"/"+reps[i].Sensor < reps[j].Site+"/"+reps[j].Sensor
	})
	return reps, werr
}

// refused reports whether a failed first connection is a refusal, which
// trying again will not mend: a certificate the broker refuses or Tail does
// not trust, credentials or a client id refused in the CONNACK. A broker
// that requires a client certificate may reset the connection of a client
// without one before its TLS alert arrives (TLS 1.3 checks the certificate
// after the handshake), so a reset counts too when no certificate is given.
func refused(c TailConfig, err error) bool {
	for _, e := range []error{packets.ErrorRefusedBadProtocolVersion, packets.ErrorRefusedIDRejected,
		packets.ErrorRefusedBadUsernameOrPassword, packets.ErrorRefusedNotAuthorised} {
		if errors.Is(err, e) {
			return true
		}
	}
	var cv *tls.CertificateVerificationError
	var alert tls.AlertError
	var rh tls.RecordHeaderError
	if errors.As(err, &cv) || errors.As(err, &alert) || errors.As(err, &rh) {
		return true
	}
	msg := err.Error()
	if strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") {
		return true
	}
	if c.TLS.Cert != "" || !strings.Contains(msg, "reset by peer") {
		return false
	}
	for _, s := range c.Brokers {
		if b, err := parseBroker(s); err == nil && b.secure {
			return true
		}
	}
	return false
}

// connectError says why Tail could not connect. A broker that requires a
// client certificate may reset the connection before its TLS alert
// arrives (TLS 1.3 checks the certificate after the handshake), so
// without one the reset gets a hint.
func connectError(c TailConfig, err error) error {
	hint := ""
	if c.TLS.Cert == "" && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "certificate required")) {
		hint = " (does the broker require a client certificate? give --cert and --key)"
	}
	return fmt.Errorf("connect to %v: %w%s", c.Brokers, err, hint)
}

// decode turns a payload into its JSON line, its header and the decoded
// message (nil for a kind newer than this tail).
func decode(b []byte) ([]byte, event.Header, msgp.Unmarshaler, error) {
	var h event.Header
	if _, err := h.UnmarshalMsg(b); err != nil {
		return nil, h, nil, err
	}
	var v msgp.Unmarshaler
	switch h.Kind {
	case event.KindAlert:
		v = &event.Alert{}
	case event.KindStatus:
		v = &event.Status{}
	case event.KindAsset:
		v = &event.Asset{}
	case event.KindStats:
		v = &event.Stats{}
	default:
		// A kind newer than this tail: show it as it is.
		var buf bytes.Buffer
		_, err := msgp.UnmarshalAsJSON(&buf, b)
		return buf.Bytes(), h, nil, err
	}
	if _, err := v.UnmarshalMsg(b); err != nil {
		return nil, h, nil, err
	}
	if a, ok := v.(*event.Alert); ok && a.Attack == nil {
		a.Attack = []string{} // "attack": [] as replay prints it
	}
	line, err := json.Marshal(v)
	return line, h, v, err
}
