package service

import (
	"bytes"
	"testing"
)

// hello is a TLS handshake under construction; the helpers append one
// field each, and the length helpers patch a length once its contents are
// in.
type hello struct{ b []byte }

func (h *hello) u8(v byte)       { h.b = append(h.b, v) }
func (h *hello) u16(v int)       { h.b = append(h.b, byte(v>>8), byte(v)) }
func (h *hello) bytes(v ...byte) { h.b = append(h.b, v...) }
func (h *hello) str(s string)    { h.b = append(h.b, s...) }

// open16 reserves a 2-octet length and returns where it is; close16
// writes the length of everything after it.
func (h *hello) open16() int { h.u16(0); return len(h.b) }
func (h *hello) close16(at int) {
	n := len(h.b) - at
	h.b[at-2], h.b[at-1] = byte(n>>8), byte(n)
}

// clientHello builds a TLS 1.3 ClientHello record the way browsers lay
// it out: a session id, three suites, null compression, then extensions.
// sni == "" leaves out the server_name extension.
func clientHello(sni string) []byte {
	var h hello
	h.u8(0x16)    // content type: handshake
	h.u16(0x0301) // legacy record version
	rec := h.open16()
	h.u8(1)             // handshake type: ClientHello
	h.bytes(0, 0, 0)    // handshake length, patched below
	hs := len(h.b)      //
	h.u16(0x0303)       // legacy_version TLS 1.2
	for i := range 32 { // random
		h.u8(byte(i * 7))
	}
	h.u8(32) // legacy_session_id
	for i := range 32 {
		h.u8(byte(0xA0 + i))
	}
	cs := h.open16() // cipher_suites
	h.u16(0x1301)    // TLS_AES_128_GCM_SHA256
	h.u16(0x1302)    // TLS_AES_256_GCM_SHA384
	h.u16(0xC02F)    // ECDHE-RSA-AES128-GCM-SHA256
	h.close16(cs)
	h.u8(1) // legacy_compression_methods: null
	h.u8(0)
	ext := h.open16()
	h.u16(0x000A) // supported_groups, before the name on purpose
	sg := h.open16()
	list := h.open16()
	h.u16(0x001D) // x25519
	h.u16(0x0017) // secp256r1
	h.close16(list)
	h.close16(sg)
	if sni != "" {
		h.u16(0x0000) // server_name
		e := h.open16()
		l := h.open16() // ServerNameList
		h.u8(0)         // host_name
		n := h.open16()
		h.str(sni)
		h.close16(n)
		h.close16(l)
		h.close16(e)
	}
	h.u16(0x002B) // supported_versions
	sv := h.open16()
	h.u8(4)
	h.u16(0x0304) // TLS 1.3
	h.u16(0x0303) // TLS 1.2
	h.close16(sv)
	h.u16(0x0010) // ALPN
	al := h.open16()
	pl := h.open16()
	h.u8(2)
	h.str("h2")
	h.close16(pl)
	h.close16(al)
	h.close16(ext)
	n := len(h.b) - hs
	h.b[hs-3], h.b[hs-2], h.b[hs-1] = byte(n>>16), byte(n>>8), byte(n)
	h.close16(rec)
	return h.b
}

// serverHello builds a TLS 1.2 ServerHello record.
func serverHello() []byte {
	var h hello
	h.u8(0x16)
	h.u16(0x0303)
	rec := h.open16()
	h.u8(2) // ServerHello
	h.bytes(0, 0, 0)
	hs := len(h.b)
	h.u16(0x0303)
	h.bytes(make([]byte, 32)...) // random
	h.u8(0)                      // no session id
	h.u16(0xC02F)                // the suite chosen
	h.u8(0)                      // null compression
	ext := h.open16()
	h.u16(0xFF01) // renegotiation_info
	h.u16(1)
	h.u8(0)
	h.close16(ext)
	n := len(h.b) - hs
	h.b[hs-3], h.b[hs-2], h.b[hs-1] = byte(n>>16), byte(n>>8), byte(n)
	h.close16(rec)
	return h.b
}

func TestSNI(t *testing.T) {
	full := clientHello("plc-gw.plant.example")
	at := bytes.Index(full, []byte("plc-gw"))
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"full hello", full, "plc-gw.plant.example"},
		{"cut just after the name", full[:at+len("plc-gw.plant.example")], "plc-gw.plant.example"},
		{"cut inside the name", full[:at+3], ""},
		{"cut inside the extensions", full[:at-6], ""},
		{"cut in the random", full[:20], ""},
		{"no server_name", clientHello(""), ""},
		{"server hello", serverHello(), ""},
		{"name of a single letter", clientHello("a"), "a"},
		{"name with a space", clientHello("evil host"), ""},
		{"name with a newline", clientHello("host\nFAKE=1"), ""},
		{"application data", []byte{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5}, ""},
		{"empty", nil, ""},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), ""},
	}
	// A record length shorter than the hello hides the name.
	short := bytes.Clone(full)
	short[3], short[4] = 0, byte(at-5-2)
	cases = append(cases, struct {
		name string
		in   []byte
		want string
	}{"record ends before the name", short, ""})
	// A list length past the extension is refused, not read beyond.
	long := bytes.Clone(full)
	long[at-5], long[at-4] = 0xFF, 0xFF
	cases = append(cases, struct {
		name string
		in   []byte
		want string
	}{"list longer than its extension", long, ""})
	for _, c := range cases {
		got := SNI(c.in)
		if string(got) != c.want || (got == nil) != (c.want == "") {
			t.Errorf("%s: SNI = %q, want %q", c.name, got, c.want)
		}
		if got != nil && !aliases(got, c.in) {
			t.Errorf("%s: the name does not alias the payload", c.name)
		}
		if cap(got) != len(got) {
			t.Errorf("%s: capacity %d past the name's %d octets", c.name, cap(got), len(got))
		}
	}
}

// aliases reports whether s is a sub-slice of b.
func aliases(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i+len(s) <= len(b); i++ {
		if &b[i] == &s[0] {
			return true
		}
	}
	return false
}

func TestSNIAllocs(t *testing.T) {
	p := clientHello("historian.plant.example")
	if n := testing.AllocsPerRun(100, func() { SNI(p) }); n != 0 {
		t.Errorf("SNI allocates %.0f times", n)
	}
}
