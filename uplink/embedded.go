package uplink

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Embedded is an MQTT broker inside the process (mochi-mqtt), for the
// demo and for hermetic tests. It accepts every client, without TLS, on a
// loopback address.
type Embedded struct {
	srv *mochi.Server
	url string
}

// StartEmbedded starts a broker on addr ("127.0.0.1:0" picks a free
// port).
func StartEmbedded(addr string) (*Embedded, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	bound := ln.Addr().String()
	ln.Close() // mochi listens itself; the port stays free in between
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: bound})); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{srv: srv, url: "tcp://" + bound}, nil
}

// URL is the broker's address, tcp://127.0.0.1:PORT.
func (e *Embedded) URL() string { return e.url }

// Close stops the broker.
func (e *Embedded) Close() error { return e.srv.Close() }

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
