package capture

import (
	"fmt"
	"syscall"
	"unsafe"
)

const (
	iflaIfname    = 3
	iflaOperstate = 16
	iffLowerUp    = 0x10000
)

// Links asks the kernel (rtnetlink, in the caller's network namespace)
// for the state of the named interfaces; one that does not exist comes
// back with Exists false.
func Links(names ...string) ([]LinkInfo, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("link state: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("link state: %w", err)
	}
	out := make([]LinkInfo, len(names))
	for i, n := range names {
		out[i].Name = n
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		ifi := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		var name string
		oper := uint8(0)
		for _, a := range attrs {
			switch a.Attr.Type {
			case iflaIfname:
				name = cString(a.Value)
			case iflaOperstate:
				if len(a.Value) > 0 {
					oper = a.Value[0]
				}
			}
		}
		for i := range out {
			if out[i].Name == name {
				out[i].Exists = true
				out[i].AdminUp = ifi.Flags&syscall.IFF_UP != 0
				out[i].Carrier = ifi.Flags&iffLowerUp != 0
				out[i].OperState = operStateName(oper)
			}
		}
	}
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
