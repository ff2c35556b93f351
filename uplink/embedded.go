package uplink

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Embedded is an MQTT broker inside the process (mochi-mqtt), for the
// demo and for hermetic tests. It accepts every client, without TLS, on a
// loopback address.
type Embedded struct {
	srv *mochi.Server
	ln  net.Listener
	url string
}

const embeddedListener = "tcp"

// StartEmbedded starts a broker on addr ("127.0.0.1:0" picks a free
// port).
func StartEmbedded(addr string) (*Embedded, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, err
	}
	// mochi serves the listener opened here: no moment in which another
	// program could take the port.
	if err := srv.AddListener(listeners.NewNet(embeddedListener, ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{srv: srv, ln: ln, url: "tcp://" + ln.Addr().String()}, nil
}

// URL is the broker's address, tcp://127.0.0.1:PORT.
func (e *Embedded) URL() string { return e.url }

// Close stops the broker: no new connection, every client disconnected,
// then the server. mochi v2.7.9's own way of closing a listener's clients
// (Clients.GetByListener) takes the clients' read lock twice, and
// deadlocks when a client leaving at that moment waits for the write
// lock between the two; so the listener is taken out of mochi's hands
// and its clients are disconnected here, from one snapshot.
func (e *Embedded) Close() error {
	e.srv.Listeners.Delete(embeddedListener)
	err := e.ln.Close()
	// A connection accepted just before may attach after a snapshot: look
	// again until none is open (briefly; a client is gone in microseconds).
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		open := 0
		for _, cl := range e.srv.Clients.GetAll() {
			if !cl.Closed() {
				open++
				e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
	}
	if cerr := e.srv.Close(); err == nil {
		err = cerr
	}
	return err
}

// Subscribed reports whether a client whose id begins with prefix is
// connected and holds at least one subscription: the demo waits for its
// tail this way before publishing.
func (e *Embedded) Subscribed(prefix string) bool {
	for id, cl := range e.srv.Clients.GetAll() {
		if strings.HasPrefix(id, prefix) && !cl.Closed() && cl.State.Subscriptions.Len() > 0 {
			return true
		}
	}
	return false
}
