package dnp3

import (
	"errors"
	"strconv"
	"time"
)

// Defaults and limits of Config.
const (
	DefaultMaxFragment   = 2048
	DefaultSelectTimeout = 10 * time.Second
	DefaultFloodRequests = 32
	DefaultMaxObjects    = 64
	DefaultMaxPoints     = 512

	// MinMaxFragment lets one whole transport segment through, so that a
	// single-segment fragment is never too long.
	MinMaxFragment = maxSegmentData
	// MaxFragmentLimit bounds the reassembly memory of one conversation:
	// each of its reassembly slots may grow to MaxFragment.
	MaxFragmentLimit = 65536
	// MaxObjectsLimit and MaxPointsLimit bound the Decoder's scratch space.
	MaxObjectsLimit = 4096
	MaxPointsLimit  = 65536
)

// withDefaults returns c with every zero or out-of-range field replaced by
// its default (or clamped to its limit).
func (c Config) withDefaults() Config {
	if c.MaxFragment <= 0 {
		c.MaxFragment = DefaultMaxFragment
	}
	c.MaxFragment = min(max(c.MaxFragment, MinMaxFragment), MaxFragmentLimit)
	if c.SelectTimeout <= 0 {
		c.SelectTimeout = DefaultSelectTimeout
	}
	if c.MaxObjects <= 0 {
		c.MaxObjects = DefaultMaxObjects
	}
	c.MaxObjects = min(c.MaxObjects, MaxObjectsLimit)
	if c.MaxPoints <= 0 {
		c.MaxPoints = DefaultMaxPoints
	}
	c.MaxPoints = min(c.MaxPoints, MaxPointsLimit)
	if c.FloodRequests <= 0 {
		c.FloodRequests = DefaultFloodRequests
	}
	return c
}

// newDecoder applies the defaults: d.cfg always holds usable values.
func newDecoder(cfg Config) *Decoder {
	d := &Decoder{cfg: cfg.withDefaults()}
	d.app.init(d.cfg)
	return d
}

func (c Config) validate() error {
	var errs []error
	if c.MaxFragment != 0 && (c.MaxFragment < MinMaxFragment || c.MaxFragment > MaxFragmentLimit) {
		errs = append(errs, rangeError("MaxFragment", c.MaxFragment, MinMaxFragment, MaxFragmentLimit, DefaultMaxFragment))
	}
	if c.SelectTimeout < 0 {
		errs = append(errs, errors.New("dnp3: SelectTimeout "+c.SelectTimeout.String()+
			" is negative (0 means the default "+DefaultSelectTimeout.String()+")"))
	}
	if c.MaxObjects < 0 || c.MaxObjects > MaxObjectsLimit {
		errs = append(errs, rangeError("MaxObjects", c.MaxObjects, 1, MaxObjectsLimit, DefaultMaxObjects))
	}
	if c.MaxPoints < 0 || c.MaxPoints > MaxPointsLimit {
		errs = append(errs, rangeError("MaxPoints", c.MaxPoints, 1, MaxPointsLimit, DefaultMaxPoints))
	}
	return errors.Join(errs...)
}

func rangeError(field string, v, lo, hi, def int) error {
	return errors.New("dnp3: " + field + " " + strconv.Itoa(v) + " is out of range: want " +
		strconv.Itoa(lo) + ".." + strconv.Itoa(hi) + ", or 0 for the default " + strconv.Itoa(def))
}
