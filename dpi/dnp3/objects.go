package dnp3

// Object layouts (IEEE 1815-2012 §4.2.2.7.3 and Annex A): how many octets
// each object of a group and variation takes and which Point fields its
// octets fill.

// objKind says how the size of one object is known.
type objKind uint8

const (
	objUnknown objKind = iota // size cannot be known: decoding stops
	objNone                   // no object data (class data, group 60)
	objFixed                  // fields below, in order
	objBits                   // packed: layout.bits bits per object
	objRaw                    // layout.bits octets, kept opaque in Octets
	objVarLen                 // the variation is the length in octets (groups 110–113)
	objAttr                   // device attribute: data type, length, value (group 0)
	objSized                  // free format: only a size prefix (prefix codes 4–6) tells the length
	objIndex                  // no object data: the prefix (an index) alone
)

// field is one fixed-size part of an object.
type field uint8

const (
	fEnd         field = iota
	fFlags             // flags octet
	fFlagsState        // flags octet whose bit 7 is the binary state
	fFlagsDouble       // flags octet whose bits 6–7 are the double-bit state
	fStatus            // control status octet (groups 12, 41, 43)
	fCS                // commanded state (bit 7) and status (bits 0–6), group 13
	fU8
	fU16
	fU32
	fI16
	fI32
	fF32
	fF64
	fSec16  // unsigned 16-bit seconds, Value in milliseconds
	fTime48 // DNP3 absolute time
	fTime16 // 16-bit time relative to the last CTO (group 51)
	fCode   // control code (group 12) or interval units (group 50 v4)
	fCount  // count (group 12)
	fOn     // on-time, ms (group 12)
	fOff    // off-time, ms (group 12)
	fSkip2  // association id (groups 121, 122), not kept
)

var fieldLen = [...]uint8{
	fEnd: 0, fFlags: 1, fFlagsState: 1, fFlagsDouble: 1, fStatus: 1, fCS: 1,
	fU8: 1, fU16: 2, fU32: 4, fI16: 2, fI32: 4, fF32: 4, fF64: 8, fSec16: 2,
	fTime48: 6, fTime16: 2, fCode: 1, fCount: 1, fOn: 4, fOff: 4, fSkip2: 2,
}

const maxFields = 5

type layout struct {
	kind objKind
	bits uint8 // objBits: bits per object; objRaw: octets per object
	f    [maxFields]field
}

// size is the octets of one objFixed object.
func (l *layout) size() int {
	n := 0
	for _, f := range l.f {
		n += int(fieldLen[f])
	}
	return n
}

func fixed(f ...field) layout {
	l := layout{kind: objFixed}
	copy(l.f[:], f)
	return l
}

var (
	lNone   = layout{kind: objNone}
	lBit    = layout{kind: objBits, bits: 1}
	lDouble = layout{kind: objBits, bits: 2}
	lSized  = layout{kind: objSized}
	lVarLen = layout{kind: objVarLen}
	lAttr   = layout{kind: objAttr}
	lIndex  = layout{kind: objIndex}
)

// Per group, indexed by variation; a zero layout is objUnknown.
var (
	g1 = [...]layout{1: lBit, 2: fixed(fFlagsState)}
	g2 = [...]layout{
		1: fixed(fFlagsState),
		2: fixed(fFlagsState, fTime48),
		3: fixed(fFlagsState, fTime16),
	}
	g3 = [...]layout{1: lDouble, 2: fixed(fFlagsDouble)}
	g4 = [...]layout{
		1: fixed(fFlagsDouble),
		2: fixed(fFlagsDouble, fTime48),
		3: fixed(fFlagsDouble, fTime16),
	}
	g10 = [...]layout{1: lBit, 2: fixed(fFlagsState)}
	g11 = [...]layout{1: fixed(fFlagsState), 2: fixed(fFlagsState, fTime48)}
	g12 = [...]layout{
		1: fixed(fCode, fCount, fOn, fOff, fStatus), // CROB
		2: fixed(fCode, fCount, fOn, fOff, fStatus), // pattern control block
		3: lBit,                                     // pattern mask
	}
	g13 = [...]layout{1: fixed(fCS), 2: fixed(fCS, fTime48)}
	g20 = [...]layout{
		1: fixed(fFlags, fU32), 2: fixed(fFlags, fU16), // counter
		3: fixed(fFlags, fU32), 4: fixed(fFlags, fU16), // delta counter
		5: fixed(fU32), 6: fixed(fU16),
		7: fixed(fU32), 8: fixed(fU16),
	}
	// Frozen counters; counter events and frozen counter events use
	// variations 1–8.
	g21 = [...]layout{
		1: fixed(fFlags, fU32), 2: fixed(fFlags, fU16),
		3: fixed(fFlags, fU32), 4: fixed(fFlags, fU16),
		5: fixed(fFlags, fU32, fTime48), 6: fixed(fFlags, fU16, fTime48),
		7: fixed(fFlags, fU32, fTime48), 8: fixed(fFlags, fU16, fTime48),
		9: fixed(fU32), 10: fixed(fU16),
		11: fixed(fU32), 12: fixed(fU16),
	}
	g30 = [...]layout{
		1: fixed(fFlags, fI32), 2: fixed(fFlags, fI16),
		3: fixed(fI32), 4: fixed(fI16),
		5: fixed(fFlags, fF32), 6: fixed(fFlags, fF64),
	}
	g31 = [...]layout{
		1: fixed(fFlags, fI32), 2: fixed(fFlags, fI16),
		3: fixed(fFlags, fI32, fTime48), 4: fixed(fFlags, fI16, fTime48),
		5: fixed(fI32), 6: fixed(fI16),
		7: fixed(fFlags, fF32), 8: fixed(fFlags, fF64),
	}
	// Analog input events, frozen analog input events, analog output
	// events.
	g32 = [...]layout{
		1: fixed(fFlags, fI32), 2: fixed(fFlags, fI16),
		3: fixed(fFlags, fI32, fTime48), 4: fixed(fFlags, fI16, fTime48),
		5: fixed(fFlags, fF32), 6: fixed(fFlags, fF64),
		7: fixed(fFlags, fF32, fTime48), 8: fixed(fFlags, fF64, fTime48),
	}
	g34 = [...]layout{1: fixed(fU16), 2: fixed(fU32), 3: fixed(fF32)}
	g40 = [...]layout{
		1: fixed(fFlags, fI32), 2: fixed(fFlags, fI16),
		3: fixed(fFlags, fF32), 4: fixed(fFlags, fF64),
	}
	g41 = [...]layout{
		1: fixed(fI32, fStatus), 2: fixed(fI16, fStatus),
		3: fixed(fF32, fStatus), 4: fixed(fF64, fStatus),
	}
	g43 = [...]layout{
		1: fixed(fStatus, fI32), 2: fixed(fStatus, fI16),
		3: fixed(fStatus, fI32, fTime48), 4: fixed(fStatus, fI16, fTime48),
		5: fixed(fStatus, fF32), 6: fixed(fStatus, fF64),
		7: fixed(fStatus, fF32, fTime48), 8: fixed(fStatus, fF64, fTime48),
	}
	g50 = [...]layout{
		1: fixed(fTime48),              // absolute time
		2: fixed(fTime48, fU32),        // absolute time and interval (ms)
		3: fixed(fTime48),              // absolute time at last recorded time
		4: fixed(fTime48, fU32, fCode), // indexed absolute time, interval count and units
	}
	g51  = [...]layout{1: fixed(fTime48), 2: fixed(fTime48)}
	g52  = [...]layout{1: fixed(fSec16), 2: fixed(fU16)}
	g60  = [...]layout{1: lNone, 2: lNone, 3: lNone, 4: lNone}
	g70  = [...]layout{1: lSized, 2: lSized, 3: lSized, 4: lSized, 5: lSized, 6: lSized, 7: lSized, 8: lSized}
	g80  = [...]layout{1: lBit}
	g81  = [...]layout{1: {kind: objRaw, bits: 3}} // device storage (obsolete): overflow, group, variation
	g83  = [...]layout{1: lSized, 2: lSized}
	g86  = [...]layout{1: lSized, 2: fixed(fU8), 3: lSized}
	g101 = [...]layout{1: {kind: objRaw, bits: 2}, 2: {kind: objRaw, bits: 4}, 3: {kind: objRaw, bits: 6}}
	g102 = [...]layout{1: fixed(fU8)}
	// Secure authentication: the aggressive mode request (v3: challenge
	// sequence number, user number) and the session key status request
	// (v4: user number) have fixed sizes; the rest are free format.
	g120 = [...]layout{
		1: lSized, 2: lSized, 3: {kind: objRaw, bits: 6}, 4: {kind: objRaw, bits: 2},
		5: lSized, 6: lSized, 7: lSized, 8: lSized, 9: lSized, 10: lSized,
		11: lSized, 12: lSized, 13: lSized, 14: lSized, 15: lSized,
	}
	g121 = [...]layout{1: fixed(fFlags, fSkip2, fU32)}
	g122 = [...]layout{1: fixed(fFlags, fSkip2, fU32), 2: fixed(fFlags, fSkip2, fU32, fTime48)}
)

func pick(table []layout, v uint8) layout {
	if int(v) < len(table) {
		return table[v]
	}
	return layout{}
}

// lookup returns the layout of group g, variation v.
func lookup(g, v uint8) layout {
	switch g {
	case 0:
		return lAttr
	case 1:
		return pick(g1[:], v)
	case 2:
		return pick(g2[:], v)
	case 3:
		return pick(g3[:], v)
	case 4:
		return pick(g4[:], v)
	case 10:
		return pick(g10[:], v)
	case 11:
		return pick(g11[:], v)
	case 12:
		return pick(g12[:], v)
	case 13:
		return pick(g13[:], v)
	case 20:
		return pick(g20[:], v)
	case 21:
		return pick(g21[:], v)
	case 22, 23:
		if v > 8 {
			return layout{}
		}
		return pick(g21[:], v)
	case 30:
		return pick(g30[:], v)
	case 31:
		return pick(g31[:], v)
	case 32, 33, 42:
		return pick(g32[:], v)
	case 34:
		return pick(g34[:], v)
	case 40:
		return pick(g40[:], v)
	case 41:
		return pick(g41[:], v)
	case 43:
		return pick(g43[:], v)
	case 50:
		return pick(g50[:], v)
	case 51:
		return pick(g51[:], v)
	case 52:
		return pick(g52[:], v)
	case 60:
		return pick(g60[:], v)
	case 70:
		return pick(g70[:], v)
	case 80:
		return pick(g80[:], v)
	case 81:
		return pick(g81[:], v)
	case 83:
		return pick(g83[:], v)
	case 85, 87, 88, 90:
		if v == 1 {
			return lSized
		}
	case 86:
		return pick(g86[:], v)
	case 101:
		return pick(g101[:], v)
	case 102:
		return pick(g102[:], v)
	case 110, 111, 112, 113:
		if v > 0 {
			return lVarLen
		}
	case 120:
		return pick(g120[:], v)
	case 121:
		return pick(g121[:], v)
	case 122:
		return pick(g122[:], v)
	}
	return layout{}
}
