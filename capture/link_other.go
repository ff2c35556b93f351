//go:build !linux

package capture

// Links returns ErrLiveUnsupported: link state comes from Linux rtnetlink.
func Links(names ...string) ([]LinkInfo, error) { return nil, ErrLiveUnsupported }
