package yamlpos

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// encode writes s in enc, with a byte order mark when bom is set, as an
// editor would save it.
func encode(s string, enc encoding, bom bool) []byte {
	if bom {
		s = "\ufeff" + s
	}
	var order interface {
		AppendUint16([]byte, uint16) []byte
		AppendUint32([]byte, uint32) []byte
	} = binary.LittleEndian
	if enc == encUTF16BE || enc == encUTF32BE {
		order = binary.BigEndian
	}
	var out []byte
	switch enc {
	case encUTF8:
		out = []byte(s)
	case encUTF16BE, encUTF16LE:
		for _, u := range utf16.Encode([]rune(s)) {
			out = order.AppendUint16(out, u)
		}
	default:
		for _, r := range s {
			out = order.AppendUint32(out, uint32(r))
		}
	}
	return out
}

func TestText(t *testing.T) {
	const text = "# Zähler\nname: \"Pumpe 𝄞\" # a character outside the BMP\nport: 502\n"
	for _, enc := range []encoding{encUTF8, encUTF16BE, encUTF16LE, encUTF32BE, encUTF32LE} {
		for _, bom := range []bool{true, false} {
			data := encode(text, enc, bom)
			if got := detect(data); got != enc {
				t.Errorf("%s (mark %v): detected as %s", enc, bom, got)
			}
			got, err := Text(data)
			if err != nil || string(got) != text {
				t.Errorf("%s (mark %v): %q, %v", enc, bom, got, err)
			}
		}
	}
	// A UTF-8 file without a mark is handed back as it is, not copied.
	plain := []byte(text)
	if got, _ := Text(plain); &got[0] != &plain[0] {
		t.Error("UTF-8 without a mark was copied")
	}
	for _, s := range []string{"", "\ufeff", "a", "a:", "\n"} {
		if got, err := Text([]byte(s)); err != nil || string(got) != strings.TrimPrefix(s, "\ufeff") {
			t.Errorf("Text(%q) = %q, %v", s, got, err)
		}
	}
}

func TestTextErrors(t *testing.T) {
	le16 := func(units ...uint16) []byte {
		var b []byte
		for _, u := range units {
			b = binary.LittleEndian.AppendUint16(b, u)
		}
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"odd length", append(encode("a: 1\nb: 2\n", encUTF16LE, true), 'x'),
			"line 3 (octet 23): not valid UTF-16LE: the file ends inside a character; save the file as UTF-8"},
		{"lone high surrogate", append(encode("a: 1\n", encUTF16LE, true), le16(0xd834, 'b')...),
			"line 2 (octet 13): not valid UTF-16LE: half of a surrogate pair"},
		{"lone low surrogate", append(encode("a: 1\n", encUTF16LE, true), le16(0xdd1e)...),
			"line 2 (octet 13): not valid UTF-16LE: half of a surrogate pair"},
		{"high surrogate at the end", append(encode("a", encUTF16LE, true), le16(0xd834)...),
			"line 1 (octet 5): not valid UTF-16LE: half of a surrogate pair"},
		{"beyond Unicode", append(encode("a\n", encUTF32BE, true), 0, 0x11, 0, 0),
			"line 2 (octet 13): not valid UTF-32BE: 0x110000 is not a character"},
		{"surrogate in UTF-32", append(encode("a", encUTF32LE, false), 0x00, 0xd8, 0, 0),
			"line 1 (octet 5): not valid UTF-32LE: 0xd800 is not a character"},
	} {
		_, err := Text(c.data)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Through a Decoder, the error names the file.
	_, err := NewDecoder("policy.yaml").Parse([]byte{0xff, 0xfe, 'a'})
	if err == nil || !strings.HasPrefix(err.Error(), "policy.yaml: line 1 (octet 3): not valid UTF-16LE") {
		t.Errorf("Parse: %v", err)
	}
}

// TestParseEncodings: a file saved with a mark, or as UTF-16 with CR LF
// line ends (Notepad's "Unicode"), parses to the same values at the same
// places as the plain file.
func TestParseEncodings(t *testing.T) {
	const text = "# head\na: 1 # one\n# between\n\nb: |\n  x\n  y\nc: \"p\n  q\"\nd: Zähler\n"
	d := NewDecoder("x.yaml")
	places := func(data []byte) string {
		f, err := d.Parse(data)
		if err != nil || len(f.Docs) != 1 {
			t.Fatalf("Parse %q: %v", data, err)
		}
		return describeMap(t, f)
	}
	want := places([]byte(text))
	if !strings.Contains(want, `a@{2 1}="1"`) || !strings.Contains(want, `d@{10 1}="Zähler"`) {
		t.Fatalf("plain: %s", want)
	}
	crlf := strings.ReplaceAll(text, "\n", "\r\n")
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"UTF-8 with a mark", encode(text, encUTF8, true)},
		{"UTF-8 with a mark and CR LF", encode(crlf, encUTF8, true)},
		{"UTF-16LE with a mark and CR LF", encode(crlf, encUTF16LE, true)},
		{"UTF-16BE without a mark", encode(text, encUTF16BE, false)},
		{"UTF-32LE with a mark", encode(text, encUTF32LE, true)},
	} {
		if got := places(c.data); got != want {
			t.Errorf("%s: %s\nplain: %s", c.name, got, want)
		}
	}
}

// FuzzText: Text never panics; what it returns is valid UTF-8 whenever
// the input was; a file without a mark whose first character is not NUL
// (YAML allows no NUL) comes back as it is; and any text written in
// UTF-16 or UTF-32, with or without a mark, comes back as the text.
func FuzzText(f *testing.F) {
	f.Add([]byte("a: 1\n"))
	f.Add([]byte("\xef\xbb\xbfa: 1\r\n"))
	f.Add(encode("a: Zähler 𝄞\n", encUTF16LE, true))
	f.Add(encode("a: 1\n", encUTF32BE, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Text(data)
		if err == nil && utf8.Valid(data) && !utf8.Valid(got) {
			t.Fatalf("Text(%q) = %q: not UTF-8", data, got)
		}
		if len(data) >= 4 && data[0] != 0 && data[1] != 0 && !bytes.HasPrefix(data, utf8BOM) &&
			!(data[0] == 0xff && data[1] == 0xfe) && !(data[0] == 0xfe && data[1] == 0xff) {
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Text(%q) = %q, %v: want it as it is", data, got, err)
			}
		}
		if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
			return
		}
		s := string(data)
		for _, enc := range []encoding{encUTF16BE, encUTF16LE, encUTF32BE, encUTF32LE} {
			for _, bom := range []bool{true, false} {
				want := s // the mark written is dropped
				if !bom {
					want = strings.TrimPrefix(s, "\ufeff") // s's own first character is the mark
					if want == s && len(s) > 0 && s[0] >= utf8.RuneSelf {
						continue // without a mark, only an ASCII first character tells the encoding
					}
				}
				back, err := Text(encode(s, enc, bom))
				if err != nil || string(back) != want {
					t.Fatalf("%s (mark %v) of %q: %q, %v", enc, bom, s, back, err)
				}
			}
		}
	})
}
