// Package uplink publishes the sensor's events to the security center
// over MQTT 3.1.1 (eclipse/paho.mqtt.golang) and subscribes to them
// (tapwatch tail).
//
// Alerts and asset changes go to an on-disk spool first (spool.go); one
// forwarder publishes them at QoS 1, in order, and removes them from the
// spool only after the broker's PUBACK. Status is retained and doubles as
// the Last Will; stats go out at QoS 0 and never touch the disk.
//
// The paho pitfalls are avoided by construction: paho's automatic
// reconnect and its stores are not used for delivery (the client runs
// with a clean session, no auto-reconnect and no resume; after a
// reconnect the forwarder republishes whatever the spool still holds, in
// order); QoS 0 messages are published only while connected and counted
// when skipped; and no token is waited on without a deadline (Done in a
// select, never Wait).
package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultTopicPrefix is the first two levels of every topic.
const DefaultTopicPrefix = "tapwatch/v1"

// DefaultBackoffMax caps the wait between connection attempts, so that a
// broker back after an outage of any length is reached within 5 s. A
// refused connection costs a broker little, even from hundreds of
// sensors.
const DefaultBackoffMax = 5 * time.Second

// Config is the uplink section of the sensor's configuration. The yaml
// names are those of the config file (docs/config.md).
type Config struct {
	Brokers      []string      `yaml:"brokers"`       // tcp://host:1883, ssl://host:8883 (mqtt:// and mqtts:// too); tried in order
	Site         string        `yaml:"site"`          // topic level; set from the sensor's site
	Sensor       string        `yaml:"sensor"`        // topic level and MQTT client id
	TopicPrefix  string        `yaml:"topic_prefix"`  // default tapwatch/v1
	Username     string        `yaml:"username"`      //
	PasswordFile string        `yaml:"password_file"` // the password is the file's first line
	KeepAlive    time.Duration `yaml:"keepalive"`     // default 30s
	TLS          TLSConfig     `yaml:"tls"`
	// Plaintext allows tcp:// to a broker that is not on this host:
	// without it only TLS leaves the box.
	Plaintext     bool          `yaml:"plaintext"`
	StatsInterval time.Duration `yaml:"stats_interval"` // default 60s; the caller's ticker
	Spool         Limits        `yaml:"spool"`
	// Window is the number of QoS 1 messages in flight before a PUBACK
	// (default 32).
	Window int `yaml:"window"`
	// Backoff between connection attempts, doubling from BackoffMin to
	// BackoffMax (defaults 1s and 5s), with jitter (50-100 % of it).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// TLSConfig is how the uplink authenticates the broker and itself.
type TLSConfig struct {
	CA         string `yaml:"ca"`          // PEM CA bundle; default: the system's roots
	Cert       string `yaml:"cert"`        // PEM client certificate, for mutual TLS
	Key        string `yaml:"key"`         // its PEM private key
	ServerName string `yaml:"server_name"` // name to verify; default: the broker URL's host
	// Insecure skips verifying the broker's certificate. For a lab only.
	Insecure bool `yaml:"insecure_skip_verify"`
}

// withDefaults fills what is unset.
func (c Config) withDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = time.Minute
	}
	if c.Spool.MaxBytes == 0 {
		c.Spool.MaxBytes = DefaultLimits.MaxBytes
	}
	if c.Spool.MaxMessages == 0 {
		c.Spool.MaxMessages = DefaultLimits.MaxMessages
	}
	if c.Window == 0 {
		c.Window = 32
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax == 0 {
		// Not below backoff_min: a config that sets only backoff_min
		// (10s, say) stays valid.
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	return c
}

// Validate checks the configuration; the error names the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("uplink.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "no broker URL given")
	}
	for i, b := range c.Brokers {
		u, err := parseBroker(b)
		if err != nil {
			bad(fmt.Sprintf("brokers[%d]", i), "%v", err)
			continue
		}
		if !u.secure && !c.Plaintext && !isLoopback(u.host) {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is plaintext MQTT to another host; use ssl:// or set plaintext: true", b)
		}
	}
	if err := checkLevel(c.Site); err != nil {
		bad("site", "%v", err)
	}
	if err := checkLevel(c.Sensor); err != nil {
		bad("sensor", "%v", err)
	}
	for _, l := range strings.Split(c.TopicPrefix, "/") {
		if err := checkLevel(l); err != nil {
			bad("topic_prefix", "%q: %v", c.TopicPrefix, err)
			break
		}
	}
	if c.KeepAlive < time.Second {
		bad("keepalive", "%v is below 1s", c.KeepAlive)
	}
	if c.StatsInterval < time.Second {
		bad("stats_interval", "%v is below 1s", c.StatsInterval)
	}
	if c.Spool.MaxBytes < MinSpoolBytes {
		bad("spool.max_bytes", "%d is below %d (two segments of %d)", c.Spool.MaxBytes, MinSpoolBytes, MinSpoolBytes/2)
	}
	if c.Spool.MaxMessages < 1 {
		bad("spool.max_messages", "%d is below 1", c.Spool.MaxMessages)
	}
	if c.Window < 1 || c.Window > 1000 {
		bad("window", "%d is not between 1 and 1000", c.Window)
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		bad("backoff_max", "%v is below backoff_min %v", c.BackoffMax, c.BackoffMin)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together")
	}
	if c.PasswordFile != "" && c.Username == "" {
		bad("password_file", "needs a username")
	}
	return errors.Join(errs...)
}

// checkLevel checks one MQTT topic level of ours.
func checkLevel(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case strings.ContainsAny(s, "/+#\x00"):
		return fmt.Errorf("%q contains /, + or #", s)
	}
	return nil
}

type brokerURL struct {
	raw    string
	host   string
	secure bool
}

// parseBroker checks a broker URL; paho takes tcp, ssl, tls, mqtt, mqtts,
// ws and wss, of which we offer the first five.
func parseBroker(s string) (brokerURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return brokerURL{}, fmt.Errorf("%q is not a URL: %v", s, err)
	}
	b := brokerURL{raw: s, host: u.Hostname()}
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		b.secure = true
	default:
		return b, fmt.Errorf("%q: scheme %q; want tcp://, mqtt://, ssl://, tls:// or mqtts://", s, u.Scheme)
	}
	if b.host == "" || u.Port() == "" {
		return b, fmt.Errorf("%q: want scheme://host:port", s)
	}
	return b, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the client's TLS configuration: TLS 1.2 or later,
// the broker verified against CA (or the system roots), the client
// certificate when given. Errors name the file.
func (t TLSConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.Insecure}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("uplink.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uplink.tls.ca: %s holds no PEM certificate", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("uplink.tls.cert/key: %s, %s: %w", t.Cert, t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ClientTLS loads t's files as the publisher does at start (tapwatch
// check calls it).
func (t TLSConfig) ClientTLS() (*tls.Config, error) { return t.tlsConfig() }

// Password reads the password file as the publisher does at start
// (tapwatch check calls it).
func (c Config) Password() (string, error) { return c.password() }

// password reads the password file's first line.
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("uplink.password_file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// Topic is the topic of kind for this sensor: prefix/site/sensor/kind.
func (c Config) Topic(kind string) string {
	c = c.withDefaults()
	return c.TopicPrefix + "/" + c.Site + "/" + c.Sensor + "/" + kind
}
