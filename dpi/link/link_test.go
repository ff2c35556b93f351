package link

import "testing"

func TestNamesAndDecoded(t *testing.T) {
	for _, tc := range []struct {
		t       Type
		name    string
		decoded bool
	}{
		{Ethernet, "Ethernet", true}, {Null, "Null", true}, {Loop, "Loop", true}, {Raw, "Raw", true},
		{RawBSD, "Raw", true}, {RawOpenBSD, "Raw", true}, {IPv4, "IPv4", true}, {IPv6, "IPv6", true},
		{LinuxSLL, "Linux SLL", true}, {LinuxSLL2, "Linux SLL2", true},
		{PPP, "PPP", false}, {IEEE80211, "IEEE802_11", false}, {12336, "UnknownLinkType(12336)", false},
	} {
		if got := tc.t.String(); got != tc.name {
			t.Errorf("%d: String %q, want %q", uint16(tc.t), got, tc.name)
		}
		if got := tc.t.Decoded(); got != tc.decoded {
			t.Errorf("%v: Decoded %v, want %v", tc.t, got, tc.decoded)
		}
	}
}
