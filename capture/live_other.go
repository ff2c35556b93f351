//go:build !linux

package capture

// Live is a live capture; on this system it cannot be opened.
type Live struct{}

// OpenLive returns ErrLiveUnsupported: live capture needs Linux.
func OpenLive(LiveConfig) (*Live, error) { return nil, ErrLiveUnsupported }

// ReadPacket is never reached: OpenLive fails.
func (*Live) ReadPacket(*Info) ([]byte, error) { return nil, ErrLiveUnsupported }

// Stats is never reached: OpenLive fails.
func (*Live) Stats() (LiveStats, error) { return LiveStats{}, ErrLiveUnsupported }

// Stop is never reached: OpenLive fails.
func (*Live) Stop() {}

// Close is never reached: OpenLive fails.
func (*Live) Close() error { return nil }
