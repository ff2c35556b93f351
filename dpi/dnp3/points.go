package dnp3

import "math"

// Point fields by group (IEEE 1815-2012 Annex A). Index is the range start
// plus the object's position, or the object's index prefix; objects with
// neither (count qualifiers, no prefix) count from 0.
//
//   - 1, 10 binary input and output; 2, 11 their events: Value 0 or 1 (the
//     packed bit, or bit 7 of the flags); Flags; Time for events with time.
//   - 3 double-bit input, 4 its events: Value 0–3 (intermediate, off, on,
//     indeterminate).
//   - 2 v3 and 4 v3 carry a time relative to the last group 51 CTO in the
//     fragment: Time is the sum and HasTime is set when a CTO came first,
//     otherwise Time holds the offset alone and HasTime is false.
//   - 12 v1 and v2 (CROB, pattern control block): Code, Count, OnTime,
//     OffTime, Status; v3 (pattern mask): Value per bit.
//   - 13 binary output command events: Value the commanded state, Status
//     the control status, Time.
//   - 20–23 counters, 30–33 analog inputs, 40 and 42 analog outputs: Value,
//     Flags when the variation has them, Time for timed variations.
//   - 34 deadbands: Value.
//   - 41 analog output commands: Value and Status; 43 their events: Status,
//     Value, Time.
//   - 50 time and date: Time; v2 Value the interval (ms); v4 Value the
//     interval count and Code its units. 51 CTO: Time.
//   - 52 time delay: Value in milliseconds (v1 seconds are converted).
//   - 80 internal indications: Value 0 or 1 per IIN bit index.
//   - 0 device attributes: Code the data type, Octets the value.
//   - 70 file control, 110–113 octet strings and virtual terminal data,
//     101 BCD, other free-format objects: Octets, opaque.
//   - 121, 122 security statistics: Flags, Value, Time.
//   - 60 class data and 120 secure authentication yield no points.
//   - Requests without object data (read, freeze, assign class) that list
//     indices with an index prefix yield a point per index, with Index only.

func (p *Parser) decodeFields(pt *Point, obj []byte) {
	off := 0
	for _, f := range p.lay.f {
		switch f {
		case fEnd:
			return
		case fFlags:
			pt.Flags, pt.HasFlags = obj[off], true
		case fFlagsState:
			pt.Flags, pt.HasFlags = obj[off], true
			pt.Value = float64(obj[off] & binaryState >> 7)
		case fFlagsDouble:
			pt.Flags, pt.HasFlags = obj[off], true
			pt.Value = float64(obj[off] >> doubleShift)
		case fStatus:
			pt.Status = obj[off]
		case fCS:
			pt.Value = float64(obj[off] & csBit >> 7)
			pt.Status = obj[off] & statusMask
		case fU8:
			pt.Value = float64(obj[off])
		case fU16:
			pt.Value = float64(readUint(obj, off, 2))
		case fU32:
			pt.Value = float64(readUint(obj, off, 4))
		case fI16:
			pt.Value = float64(int16(readUint(obj, off, 2)))
		case fI32:
			pt.Value = float64(int32(readUint(obj, off, 4)))
		case fF32:
			pt.Value = float64(math.Float32frombits(readUint(obj, off, 4)))
		case fF64:
			pt.Value = math.Float64frombits(uint64(readUint(obj, off, 4)) | uint64(readUint(obj, off+4, 4))<<32)
		case fSec16:
			pt.Value = float64(readUint(obj, off, 2)) * msPerSecond
		case fTime48:
			pt.Time = uint64(readUint(obj, off, 4)) | uint64(readUint(obj, off+4, 2))<<32
			pt.HasTime = true
			if p.hdr.Group == groupCTO {
				p.cto, p.hasCTO = pt.Time, true
			}
		case fTime16:
			// Relative to the last CTO; without one the offset alone is kept.
			pt.Time = uint64(readUint(obj, off, 2))
			if p.hasCTO {
				pt.Time += p.cto
				pt.HasTime = true
			}
		case fCode:
			pt.Code = obj[off]
		case fCount:
			pt.Count = obj[off]
		case fOn:
			pt.OnTime = readUint(obj, off, 4)
		case fOff:
			pt.OffTime = readUint(obj, off, 4)
		}
		off += int(fieldLen[f])
	}
}
