package dnp3

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCRC(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint16
	}{
		{"check value of CRC-16/DNP", []byte("123456789"), 0xEA82},
		{"empty", nil, 0xFFFF},
		{
			"link header: reset link states from 1024 to 1",
			[]byte{
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xC0,       // CONTROL: DIR, PRM, reset link states
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			},
			0x21E9, // sent E9 21
		},
	}
	for _, tt := range tests {
		if got := crc16(tt.in); got != tt.want {
			t.Errorf("%s: crc16 = %#04x, want %#04x", tt.name, got, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	good := []byte{0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21}
	tests := []struct {
		name string
		in   []byte
		want bool
	}{
		{"reset link states", good, true},
		{"followed by more", append(append([]byte(nil), good...), 0xAA, 0xBB), true},
		{"header CRC off by one", []byte{0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x22}, false},
		{"nine octets", good[:9], false},
		{"wrong start", []byte{0x06, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21}, false},
		{"empty", nil, false},
		{"Modbus/TCP", []byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01}, false},
	}
	for _, tt := range tests {
		if got := Detect(tt.in); got != tt.want {
			t.Errorf("%s: Detect = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFrameLen(t *testing.T) {
	for _, tt := range []struct {
		length uint8
		want   int
	}{
		{0, 10}, {4, 10}, {5, 10}, {6, 13}, {21, 28}, {22, 31}, {255, 292},
	} {
		if got := linkFrameLen(tt.length); got != tt.want {
			t.Errorf("linkFrameLen(%d) = %d, want %d", tt.length, got, tt.want)
		}
	}
}

// Fixtures for the table below.
var (
	// reset link states, from master 1024 to outstation 1 (a capture's
	// bytes, CRC included).
	frameResetLink = []byte{
		0x05, 0x64, // start
		0x05,       // LENGTH: control and addresses, no user data
		0xC0,       // CONTROL: DIR, PRM, function 0 reset link states
		0x01, 0x00, // destination 1
		0x00, 0x04, // source 1024
		0xE9, 0x21, // header CRC
	}
	seenResetLink = seen{Kind: KindLink, Dir: Request, PRM: true, Func: lfResetLinkStates, Src: 1024, Dst: 1}

	// link status, the outstation's answer to request link status.
	frameLinkStatus = withCRCs(
		0x05, 0x64, // start
		0x05,       // LENGTH
		0x0B,       // CONTROL: secondary, function 11 link status
		0x00, 0x04, // destination 1024
		0x01, 0x00, // source 1
	)
	seenLinkStatus = seen{Kind: KindLink, Dir: Response, Func: lfLinkStatus, Src: 1, Dst: 1024}
)

func TestLinkFrames(t *testing.T) {
	// a user data frame whose second block CRC is wrong.
	badBlock := withCRCs(
		0x05, 0x64, // start
		0x05+20,    // LENGTH: 20 octets of user data, two blocks
		0xC4,       // CONTROL: DIR, PRM, unconfirmed user data
		0x01, 0x00, // destination 1
		0x00, 0x04, // source 1024
		0xC0,                         // transport: FIR, FIN, sequence 0
		0xC0, 0x02, 0x0C, 0x01, 0x28, // application: WRITE ...
		0x01, 0x00, 0x05, 0x00, 0x03, 0x01, 0x64, 0x00, 0x00, 0x00,
		0x64, 0x00, 0x00, 0x00, // the second block
	)
	badBlock[len(badBlock)-1] ^= 0xFF

	tests := []struct {
		name string
		in   []byte
		want []seen
	}{
		{"primary 0 reset link states", frameResetLink, []seen{seenResetLink}},
		{
			"primary 1 reset user process (obsolete)",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xC1,       // CONTROL: DIR, PRM, function 1
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			),
			[]seen{{Kind: KindLink, Dir: Request, PRM: true, Func: lfResetUserProcess, Src: 1024, Dst: 1}},
		},
		{
			"primary 2 test link states",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xF2,       // CONTROL: DIR, PRM, FCB, FCV, function 2
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			),
			[]seen{{Kind: KindLink, Dir: Request, PRM: true, Func: lfTestLinkStates, Src: 1024, Dst: 1}},
		},
		{
			"primary 3 confirmed user data without user data",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH: no transport header at all
				0xD3,       // CONTROL: DIR, PRM, FCV, function 3
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			),
			[]seen{{Kind: KindLink, Dir: Request, PRM: true, Func: lfConfirmedData, Src: 1024, Dst: 1}},
		},
		{
			"primary 3 confirmed user data",
			withCRCs(
				0x05, 0x64, // start
				0x05+6,     // LENGTH: 6 octets of user data
				0xD3,       // CONTROL: DIR, PRM, FCV, function 3
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
				0xC5,                         // transport: FIR, FIN, sequence 5
				0xC0, 0x01, 0x3C, 0x02, 0x06, // READ class 1
			),
			[]seen{{Kind: KindApplication, PRM: true, Func: lfConfirmedData, Src: 1024, Dst: 1, Segments: 1, FirstSeq: 5, Fragment: string(readClass1)}},
		},
		{
			"primary 4 unconfirmed user data",
			withCRCs(
				0x05, 0x64, // start
				0x05+6,     // LENGTH: 6 octets of user data
				0xC4,       // CONTROL: DIR, PRM, function 4
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
				0xC0,                         // transport: FIR, FIN, sequence 0
				0xC0, 0x01, 0x3C, 0x02, 0x06, // READ class 1
			),
			[]seen{{Kind: KindApplication, PRM: true, Func: lfUnconfirmedData, Src: 1024, Dst: 1, Segments: 1, Fragment: string(readClass1)}},
		},
		{
			"primary 9 request link status",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xC9,       // CONTROL: DIR, PRM, function 9
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			),
			[]seen{{Kind: KindLink, Dir: Request, PRM: true, Func: lfRequestLinkStatus, Src: 1024, Dst: 1}},
		},
		{
			"secondary 0 ACK",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0x00,       // CONTROL: secondary, function 0
				0x00, 0x04, // destination 1024
				0x01, 0x00, // source 1
			),
			[]seen{{Kind: KindLink, Dir: Response, Func: lfAck, Src: 1, Dst: 1024}},
		},
		{
			"secondary 1 NACK with DFC",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0x11,       // CONTROL: secondary, DFC, function 1
				0x00, 0x04, // destination 1024
				0x01, 0x00, // source 1
			),
			[]seen{{Kind: KindLink, Dir: Response, Func: lfNack, Src: 1, Dst: 1024}},
		},
		{"secondary 11 link status", frameLinkStatus, []seen{seenLinkStatus}},
		{
			"secondary 15 not supported",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0x0F,       // CONTROL: secondary, function 15
				0x00, 0x04, // destination 1024
				0x01, 0x00, // source 1
			),
			[]seen{{Kind: KindLink, Dir: Response, Func: lfNotSupported, Src: 1, Dst: 1024}},
		},
		{
			"primary 7 is reserved",
			withCRCs(
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xC7,       // CONTROL: DIR, PRM, function 7
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			),
			[]seen{{Kind: KindLink, Dir: Request, PRM: true, Func: 7, Src: 1024, Dst: 1,
				Malformed: BadLinkFunction, Anomalies: 1 << BadLinkFunction}},
		},
		{
			"secondary user data is reserved, its data ignored",
			withCRCs(
				0x05, 0x64, // start
				0x05+2,     // LENGTH: 2 octets of user data
				0x04,       // CONTROL: secondary, function 4
				0x00, 0x04, // destination 1024
				0x01, 0x00, // source 1
				0xC0, 0xC0, // a transport and an application header
			),
			[]seen{{Kind: KindLink, Dir: Response, Func: 4, Src: 1, Dst: 1024,
				Malformed: BadLinkFunction, Anomalies: 1 << BadLinkFunction}},
		},
		{
			"bad header CRC: the frame is garbage, the next one is found",
			joinBytes([]byte{
				0x05, 0x64, // start
				0x05,       // LENGTH
				0xC0,       // CONTROL
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
				0xE9, 0x22, // header CRC, one bit off
			}, frameLinkStatus),
			[]seen{
				{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1<<NotDNP3 | 1<<BadHeaderCRC,
					Raw: "\x05\x64\x05\xC0\x01\x00\x00\x04\xE9\x22"},
				seenLinkStatus,
			},
		},
		{
			"bad block CRC: reported, and framing goes on after the frame",
			joinBytes(badBlock, frameLinkStatus),
			[]seen{
				{Kind: KindLink, Dir: Request, PRM: true, Func: lfUnconfirmedData, Src: 1024, Dst: 1,
					Malformed: BadBlockCRC, Anomalies: 1 << BadBlockCRC},
				seenLinkStatus,
			},
		},
		{
			"LENGTH below 5: the header alone is a frame",
			joinBytes(withCRCs(
				0x05, 0x64, // start
				0x04,       // LENGTH: too short for control and addresses
				0xC0,       // CONTROL
				0x01, 0x00, // destination 1
				0x00, 0x04, // source 1024
			), frameLinkStatus),
			[]seen{
				{Kind: KindLink, Dir: Request, PRM: true, Src: 1024, Dst: 1,
					Malformed: LinkTooShort, Anomalies: 1 << LinkTooShort},
				seenLinkStatus,
			},
		},
		{
			"garbage between frames",
			joinBytes(frameResetLink, []byte("HTTP/1.1 400\r\n"), frameLinkStatus),
			[]seen{
				seenResetLink,
				{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "HTTP/1.1 400\r\n"},
				seenLinkStatus,
			},
		},
		{
			"garbage made of start octets; 05 64 64 05 05 64 05 C0 is a bad header",
			joinBytes([]byte{0x05, 0x05, 0x64, 0x64, 0x05}, frameResetLink),
			[]seen{
				{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1<<NotDNP3 | 1<<BadHeaderCRC, Raw: "\x05\x05\x64\x64\x05"},
				seenResetLink,
			},
		},
		{
			"a long run of garbage is one message with the first 292 octets",
			joinBytes(bytes.Repeat([]byte{0xAA}, 1000), frameResetLink),
			[]seen{
				{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: strings.Repeat("\xAA", MaxFrameLen)},
				seenResetLink,
			},
		},
		{
			"several frames",
			joinBytes(frameResetLink, frameLinkStatus, frameResetLink),
			[]seen{seenResetLink, seenLinkStatus, seenResetLink},
		},
		{
			"the longest frame",
			linkFrame(0xC4, 1, 1024, append([]byte{0xC0}, analogResponse(48)[:249]...)),
			[]seen{{Kind: KindApplication, PRM: true, Func: lfUnconfirmedData, Src: 1024, Dst: 1,
				Segments: 1, Fragment: string(analogResponse(48)[:249])}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, r := newFeeder(t, Config{}, false)
			f.feed(FromClient, tt.in, Meta{})
			if len(f.held[0]) != 0 {
				t.Errorf("%d bytes left unconsumed", len(f.held[0]))
			}
			checkSeen(t, r.got, tt.want)

			// Every split point gives the same messages; a garbage run
			// reported early holds a prefix of its bytes.
			for i := 1; i < len(tt.in); i++ {
				f, r := newFeeder(t, Config{}, false)
				f.feed(FromClient, tt.in[:i], Meta{})
				f.feed(FromClient, tt.in[i:], Meta{})
				checkSeenPrefix(t, "split at "+strconv.Itoa(i), r.got, tt.want)
			}
			// And so does a byte at a time.
			f, r = newFeeder(t, Config{}, false)
			for i := range tt.in {
				f.feed(FromClient, tt.in[i:i+1], Meta{})
			}
			checkSeenPrefix(t, "a byte at a time", r.got, tt.want)

			// As a datagram.
			r = &recorder{}
			var c Conn
			NewDecoder(Config{}).Datagram(&c, FromServer, tt.in, Meta{}, r)
			checkSeen(t, r.got, tt.want)
		})
	}
}

func TestReservedLinkFunctions(t *testing.T) {
	for _, prm := range []bool{true, false} {
		for fc := range uint8(16) {
			ctl := fc
			if prm {
				ctl |= linkPRM | linkDIR
			}
			r := &recorder{}
			var c Conn
			NewDecoder(Config{}).Datagram(&c, FromClient, linkFrame(ctl, 1, 2, nil), Meta{}, r)
			if len(r.got) != 1 {
				t.Fatalf("prm %v fc %d: %d messages", prm, fc, len(r.got))
			}
			reserved := r.got[0].Malformed == BadLinkFunction
			if reserved == linkFunctionValid(prm, fc) {
				t.Errorf("prm %v fc %d: reserved %v", prm, fc, reserved)
			}
			want := !(prm && fc <= 4 || prm && fc == 9 || !prm && (fc <= 1 || fc == 11 || fc == 15))
			if reserved != want {
				t.Errorf("prm %v fc %d: reserved %v, want %v", prm, fc, reserved, want)
			}
		}
	}
}

func checkSeen(t *testing.T, got, want []seen) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// checkSeenPrefix is checkSeen, except that a garbage message may hold only
// the start of the expected Raw.
func checkSeenPrefix(t *testing.T, what string, got, want []seen) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d:\n got %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind == KindGarbage && w.Kind == KindGarbage && strings.HasPrefix(w.Raw, g.Raw) && g.Raw != "" {
			g.Raw, w.Raw = "", ""
			// A bad header seen after the run was reported is not in it.
			g.Anomalies &^= 1 << BadHeaderCRC
			w.Anomalies &^= 1 << BadHeaderCRC
		}
		if g != w {
			t.Errorf("%s: message %d:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

func TestDatagram(t *testing.T) {
	cut := linkFrame(ctlMasterData, 1, 1024, append([]byte{0xC0}, readClass1...))
	tests := []struct {
		name string
		in   []byte
		want []seen
	}{
		{
			"two frames",
			joinBytes(frameResetLink, frameLinkStatus),
			[]seen{seenResetLink, seenLinkStatus},
		},
		{
			"a frame and the start of another",
			joinBytes(frameResetLink, cut[:len(cut)-1]),
			[]seen{
				seenResetLink,
				{Kind: KindGarbage, Dir: Request, PRM: true, Func: lfUnconfirmedData, Src: 1024, Dst: 1,
					Truncated: true, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: string(cut[:len(cut)-1])},
			},
		},
		{
			"a frame and half a header",
			joinBytes(frameResetLink, []byte{0x05, 0x64, 0x05}),
			[]seen{
				seenResetLink,
				{Kind: KindGarbage, Truncated: true, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "\x05\x64\x05"},
			},
		},
		{
			"garbage then half a header: one run",
			joinBytes(frameResetLink, []byte{0x01, 0x05, 0x64}),
			[]seen{
				seenResetLink,
				{Kind: KindGarbage, Truncated: true, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "\x01\x05\x64"},
			},
		},
	}
	for _, tt := range tests {
		r := &recorder{}
		var c Conn
		NewDecoder(Config{}).Datagram(&c, FromClient, tt.in, Meta{}, r)
		t.Run(tt.name, func(t *testing.T) { checkSeen(t, r.got, tt.want) })
	}
}

func TestGarbageRunOverFeeds(t *testing.T) {
	f, r := newFeeder(t, Config{}, false)
	f.feed(FromClient, []byte("abc"), Meta{Frame: 1})
	f.feed(FromClient, []byte("def"), Meta{Frame: 2})
	f.feed(FromClient, frameResetLink[:4], Meta{Frame: 3})
	f.feed(FromClient, joinBytes(frameResetLink[4:], []byte("ghi")), Meta{Frame: 4})
	want := []seen{
		{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "abc", Frame: 1},
		seenResetLink,
		{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "ghi", Frame: 4},
	}
	want[1].Frame = 4
	checkSeen(t, r.got, want)
}

func TestMidStreamFraming(t *testing.T) {
	f, r := newFeeder(t, Config{}, true)
	f.feed(FromServer, joinBytes(frameLinkStatus[3:], frameLinkStatus, []byte{0xFF}), Meta{})
	f.gap(FromServer, Meta{})
	f.feed(FromServer, joinBytes([]byte{0xFF}, frameLinkStatus), Meta{})
	tail := string(frameLinkStatus[3:])
	checkSeen(t, r.got, []seen{
		{Kind: KindGarbage, Truncated: true, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: tail},
		seenLinkStatus,
		{Kind: KindGarbage, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "\xFF"},
		{Kind: KindGarbage, Truncated: true, Malformed: NotDNP3, Anomalies: 1 << NotDNP3, Raw: "\xFF"},
		seenLinkStatus,
	})
}

func TestGapReportsHeldBytes(t *testing.T) {
	f, r := newFeeder(t, Config{}, false)
	f.feed(FromClient, frameResetLink[:5], Meta{})
	f.gap(FromClient, Meta{})
	f.feed(FromClient, frameResetLink, Meta{})
	checkSeen(t, r.got, []seen{
		{Kind: KindGarbage, Truncated: true, Raw: string(frameResetLink[:5])},
		seenResetLink,
	})
}

func TestInvalidSide(t *testing.T) {
	d := NewDecoder(Config{})
	var c Conn
	r := &recorder{}
	if n := d.Feed(&c, 0, frameResetLink, Meta{}, r); n != len(frameResetLink) {
		t.Errorf("Feed with side 0 consumed %d", n)
	}
	d.Datagram(&c, 3, frameResetLink, Meta{}, r)
	d.Gap(&c, 7, frameResetLink, Meta{}, r)
	if len(r.got) != 0 {
		t.Errorf("messages for an invalid side: %+v", r.got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // a substring of the error; "" for none
	}{
		{Config{}, ""},
		{Config{MaxFragment: 249, SelectTimeout: 1, MaxObjects: 1, MaxPoints: 1}, ""},
		{Config{MaxFragment: 65536, MaxObjects: MaxObjectsLimit, MaxPoints: MaxPointsLimit}, ""},
		{Config{MaxFragment: 100}, "MaxFragment 100 is out of range"},
		{Config{MaxFragment: -1}, "MaxFragment -1"},
		{Config{MaxFragment: 65537}, "MaxFragment 65537"},
		{Config{SelectTimeout: -5e9}, "SelectTimeout -5s is negative"},
		{Config{MaxObjects: -2}, "MaxObjects -2"},
		{Config{MaxPoints: 1 << 20}, "MaxPoints 1048576"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want one containing %q", tt.cfg, err, tt.want)
		}
	}
	d := NewDecoder(Config{})
	if d.cfg.MaxFragment != DefaultMaxFragment || d.cfg.SelectTimeout != DefaultSelectTimeout ||
		d.cfg.MaxObjects != DefaultMaxObjects || d.cfg.MaxPoints != DefaultMaxPoints {
		t.Errorf("defaults: %+v", d.cfg)
	}
}

// TestImportsStdOnlyNoFmt keeps the decoder free of fmt (and of reflect
// and anything outside the standard library).
func TestImportsStdOnlyNoFmt(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/tapwatch/tapwatch/dpi/proto" {
				continue // the decoder contract, itself standard library only
			}
			first, _, _ := strings.Cut(path, "/")
			if path == "fmt" || path == "reflect" || strings.Contains(first, ".") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

// TestCRCSlicingMatchesBitwise checks the four-octets-a-step CRC against a
// plain bit-by-bit one, for every length up to a full frame.
func TestCRCSlicingMatchesBitwise(t *testing.T) {
	bitwise := func(b []byte) uint16 {
		var c uint16
		for _, x := range b {
			c ^= uint16(x)
			for range 8 {
				if c&1 != 0 {
					c = c>>1 ^ crcPoly
				} else {
					c >>= 1
				}
			}
		}
		return ^c
	}
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*131 + i>>3)
	}
	for n := 0; n <= len(b); n++ {
		for start := 0; start < 4; start++ {
			if start+n > len(b) {
				continue
			}
			if got, want := crc16(b[start:start+n]), bitwise(b[start:start+n]); got != want {
				t.Fatalf("crc16 of %d octets at %d: %#04x, want %#04x", n, start, got, want)
			}
		}
	}
}

// TestHeaderOK: headerOK agrees with crcOK over eight octets, for
// headers whose CRC is right and for every one-bit change of one.
func TestHeaderOK(t *testing.T) {
	for i := range 64 {
		h := make([]byte, linkHeaderLen+3) // longer than a header: only the first ten count
		for j := range h {
			h[j] = byte(i*37 + j*j*11)
		}
		c := crc16(h[:linkHeaderData])
		h[8], h[9] = byte(c), byte(c>>8)
		if !headerOK(h) {
			t.Fatalf("header %x: refused", h)
		}
		for bit := range 8 * (linkHeaderData + crcLen) {
			h[bit/8] ^= 1 << (bit % 8)
			if got, want := headerOK(h), crcOK(h, linkHeaderData); got != want || got {
				t.Fatalf("header %x: headerOK %v, crcOK %v", h, got, want)
			}
			h[bit/8] ^= 1 << (bit % 8)
		}
	}
}

// TestUserData: userData takes the user data out of blocks of every
// length with their CRCs, and refuses a wrong CRC in any block, or a
// body cut short, wherever.
func TestUserData(t *testing.T) {
	for n := 0; n <= 250; n++ {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(n*31 + i*i)
		}
		var body []byte
		for i := 0; i < n; i += 16 {
			blk := data[i:min(n, i+16)]
			c := crc16(blk)
			body = append(append(body, blk...), byte(c), byte(c>>8))
		}
		user := make([]byte, n)
		if !userData(user, body) || !bytes.Equal(user, data) {
			t.Fatalf("%d octets: not taken out: %x", n, user)
		}
		for at := range body {
			body[at] ^= 0x10
			if userData(make([]byte, n), body) {
				t.Fatalf("%d octets: a change at %d accepted", n, at)
			}
			body[at] ^= 0x10
		}
		for cut := range len(body) {
			if userData(make([]byte, n), body[:cut]) {
				t.Fatalf("%d octets: a body cut at %d accepted", n, cut)
			}
		}
	}
}
