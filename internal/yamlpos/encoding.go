package yamlpos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Text returns a YAML file's bytes as UTF-8 without a byte order mark,
// which is what the parser reads. YAML (1.2, section 5.2) allows a file in
// UTF-8, UTF-16 or UTF-32, with or without a byte order mark, and tells
// them apart by their first octets; an editor on Windows saves "UTF-8"
// with a mark, and "Unicode" as UTF-16 with one. A file in UTF-16 or
// UTF-32 is converted, line for line, so that errors still name the lines
// the user sees. A file in UTF-8 comes back as it is, less its mark. The
// error says where a UTF-16 or UTF-32 file is damaged: the line, and the
// octet from the start of the file.
func Text(data []byte) ([]byte, error) {
	switch enc := detect(data); enc {
	case encUTF8:
		return bytes.TrimPrefix(data, utf8BOM), nil
	default:
		return transcode(data, enc)
	}
}

type encoding uint8

const (
	encUTF8 encoding = iota
	encUTF16BE
	encUTF16LE
	encUTF32BE
	encUTF32LE
)

func (e encoding) String() string {
	return [...]string{"UTF-8", "UTF-16BE", "UTF-16LE", "UTF-32BE", "UTF-32LE"}[e]
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// detect is YAML's table of byte order marks and first characters: a file
// starts with a mark, or with an ASCII character whose zero octets give
// the encoding away.
func detect(b []byte) encoding {
	at := func(i int) int {
		if i < len(b) {
			return int(b[i])
		}
		return -1
	}
	switch {
	case at(0) == 0 && at(1) == 0 && at(2) == 0xfe && at(3) == 0xff,
		at(0) == 0 && at(1) == 0 && at(2) == 0 && at(3) > 0:
		return encUTF32BE
	case at(0) == 0xff && at(1) == 0xfe && at(2) == 0 && at(3) == 0,
		at(0) > 0 && at(1) == 0 && at(2) == 0 && at(3) == 0:
		return encUTF32LE
	case at(0) == 0xfe && at(1) == 0xff,
		at(0) == 0 && at(1) > 0:
		return encUTF16BE
	case at(0) == 0xff && at(1) == 0xfe,
		at(0) > 0 && at(1) == 0:
		return encUTF16LE
	}
	return encUTF8
}

// transcode converts a UTF-16 or UTF-32 file to UTF-8, dropping the byte
// order mark at its start.
func transcode(data []byte, enc encoding) ([]byte, error) {
	var order binary.ByteOrder = binary.LittleEndian
	if enc == encUTF16BE || enc == encUTF32BE {
		order = binary.BigEndian
	}
	unit := 2
	if enc == encUTF32BE || enc == encUTF32LE {
		unit = 4
	}
	out := make([]byte, 0, len(data)/unit+len(data)/8)
	line := 1
	bad := func(off int, format string, a ...any) error {
		return fmt.Errorf("line %d (octet %d): not valid %s: %s; save the file as UTF-8", line, off+1, enc, fmt.Sprintf(format, a...))
	}
	for off := 0; off < len(data); {
		if len(data)-off < unit {
			return nil, bad(off, "the file ends inside a character")
		}
		var r rune
		n := unit
		if unit == 4 {
			v := order.Uint32(data[off:])
			if v > utf8.MaxRune || utf16.IsSurrogate(rune(v)) {
				return nil, bad(off, "%#x is not a character", v)
			}
			r = rune(v)
		} else {
			r = rune(order.Uint16(data[off:]))
			if utf16.IsSurrogate(r) {
				var lo rune = -1
				if len(data)-off >= 4 {
					lo = rune(order.Uint16(data[off+2:]))
				}
				if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
					return nil, bad(off, "half of a surrogate pair")
				}
				n = 4
			}
		}
		if off == 0 && r == 0xfeff {
			off += n // the byte order mark
			continue
		}
		if r == '\n' {
			line++
		}
		out = utf8.AppendRune(out, r)
		off += n
	}
	return out, nil
}
