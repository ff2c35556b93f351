package uplink

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Close returns while clients leave, and the port is closed after it.
// mochi's own closing of a listener's clients deadlocked once in CI
// (TestReplayMQTT hung for 10 minutes in Embedded.Close) when a client
// left in a window of a few instructions; this test does not hit that
// window reliably (30 rounds passed on the old Close too), so it guards
// the new Close's behaviour, not the deadlock itself.
func TestEmbeddedCloseWhileClientsLeave(t *testing.T) {
	for round := range 30 {
		b, err := StartEmbedded("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var clients []mqtt.Client
		for i := range 20 {
			o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("c%d-%d", round, i)).SetCleanSession(true)
			c := mqtt.NewClient(o)
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			clients = append(clients, c)
		}
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { c.Disconnect(0) })
		}
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("round %d: Close: %v", round, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return within 10s while clients left", round)
		}
		wg.Wait()
		// Closed means closed: the port takes no connection.
		o := mqtt.NewClientOptions().AddBroker(b.URL()).SetConnectTimeout(time.Second)
		if tok := mqtt.NewClient(o).Connect(); tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
			t.Fatalf("round %d: connected to a closed broker", round)
		}
	}
}
