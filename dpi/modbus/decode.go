package modbus

import "encoding/binary"

// PDU field sizes and the specification's limits (§6).
const (
	fcLen          = 1
	addrLen        = 5 // function code, address, quantity or value
	exceptionLen   = 2 // function code, exception code
	countedHdrLen  = 2 // function code, byte count
	multiHdrLen    = 6 // function code, address, quantity, byte count
	maskWriteLen   = 7 // function code, address, AND mask, OR mask
	rwHdrLen       = 10
	fifoReqLen     = 3
	fifoRespHdrLen = 5 // function code, byte count, FIFO count
	diagHdrLen     = 3 // function code, sub-function
	diagLen        = 5 // with one data word
	statusRespLen  = 2 // FC 7 response
	eventCtrLen    = 5 // FC 11 response
	eventLogHdrLen = 6 // status, event count, message count
	meiHdrLen      = 2
	devIDReqLen    = 4 // function code, MEI, read device id code, object id
	devIDRespHdr   = 7 // ..., conformity, more follows, next object id, number of objects
	objectHdrLen   = 2 // object id, object length
	fileSubReqLen  = 7 // reference type, file number, record number, record length
	fileSubRespHdr = 2 // sub-response length, reference type

	maxReadBits       = 2000
	maxReadRegisters  = 125
	maxWriteBits      = 1968
	maxWriteRegisters = 123
	maxRWWriteRegs    = 121
	maxFIFOCount      = 31
	maxEvents         = 64
	maxFileRecordNum  = 0x270F
	fileRefType       = 6
	coilOn            = 0xFF00
	coilOff           = 0x0000
	moreFollows       = 0xFF
	diagRestartClear  = 0xFF00 // restart communications and clear the event log
	lastDevIDCode     = 4
)

// pduLen returns the length of the PDU in p as implied by its function code
// and its own count fields, and whether p tells it. p may run past the end
// of the PDU.
func pduLen(dir Direction, p []byte) (int, bool) {
	if len(p) < fcLen {
		return 0, false
	}
	fc := p[0]
	if fc&ExceptionBit != 0 {
		if dir == Response && Class(fc&^ExceptionBit) == ClassPublic {
			return exceptionLen, true
		}
		return 0, false
	}
	switch fc {
	case FuncDiagnostics:
		if len(p) < diagHdrLen {
			return 0, false
		}
		if sub := be16(p[1:]); sub != SubReturnQueryData && knownSub(sub) {
			return diagLen, true
		}
		return 0, false
	case FuncWriteSingleCoil, FuncWriteSingleRegister:
		return addrLen, true
	case FuncMaskWriteRegister:
		return maskWriteLen, true
	case FuncEncapsulatedInterface:
		if len(p) < meiHdrLen || p[1] != MEIReadDeviceID {
			return 0, false
		}
		if dir == Request {
			return devIDReqLen, true
		}
		return devIDLen(p)
	}
	if dir == Request {
		switch fc {
		case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
			return addrLen, true
		case FuncReadExceptionStatus, FuncGetCommEventCounter, FuncGetCommEventLog, FuncReportServerID:
			return fcLen, true
		case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
			if len(p) < multiHdrLen {
				return 0, false
			}
			// A byte count that disagrees with the quantity cannot be
			// trusted to frame with.
			if int(p[5]) != dataBytes(fc, int(be16(p[3:]))) {
				return 0, false
			}
			return multiHdrLen + int(p[5]), true
		case FuncReadFileRecord, FuncWriteFileRecord:
			if len(p) < countedHdrLen {
				return 0, false
			}
			return countedHdrLen + int(p[1]), true
		case FuncReadWriteMultipleRegisters:
			if len(p) < rwHdrLen || int(p[9]) != 2*int(be16(p[7:])) {
				return 0, false
			}
			return rwHdrLen + int(p[9]), true
		case FuncReadFIFOQueue:
			return fifoReqLen, true
		}
		return 0, false
	}
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters,
		FuncGetCommEventLog, FuncReportServerID, FuncReadFileRecord, FuncWriteFileRecord,
		FuncReadWriteMultipleRegisters:
		if len(p) < countedHdrLen {
			return 0, false
		}
		return countedHdrLen + int(p[1]), true
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		return addrLen, true
	case FuncReadExceptionStatus:
		return statusRespLen, true
	case FuncGetCommEventCounter:
		return eventCtrLen, true
	case FuncReadFIFOQueue:
		if len(p) < fifoRespHdrLen {
			return 0, false
		}
		return 3 + int(be16(p[1:])), true
	}
	return 0, false
}

// devIDLen walks the objects of a read device identification response.
func devIDLen(p []byte) (int, bool) {
	if len(p) < devIDRespHdr {
		return 0, false
	}
	off := devIDRespHdr
	for i := 0; i < int(p[6]); i++ {
		if off+objectHdrLen > len(p) {
			return 0, false
		}
		off += objectHdrLen + int(p[off+1])
	}
	if off > len(p) {
		return 0, false
	}
	return off, true
}

// dataBytes is the byte count that carries n coils or registers.
func dataBytes(fc uint8, n int) int {
	if fc == FuncWriteMultipleCoils || fc == FuncReadCoils || fc == FuncReadDiscreteInputs {
		return (n + 7) / 8
	}
	return 2 * n
}

// functionOf is the function code of a PDU that begins with fc: responses
// without the exception bit.
func functionOf(dir Direction, fc uint8) uint8 {
	if dir == Response {
		return fc &^ ExceptionBit
	}
	return fc
}

func (d *Decoder) begin(m *Message, dir Direction, meta *Meta) *Message {
	// Cleared in place, then filled: a literal with fields is built in a
	// temporary and copied over, twice the work for every message.
	*m = Message{}
	m.Meta, m.Dir = *meta, dir
	return m
}

func (m *Message) flag(r Reason) {
	if m.Malformed == 0 {
		m.Malformed = r
	}
}

// decode reports one framed ADU and pairs it.
func (d *Decoder) decode(c *Conn, dir Direction, adu []byte, reason Reason, meta *Meta, h Handler) {
	d.decodePDU(c, dir, be16(adu[offTID:]), adu[offUnit], adu[headerLen:], reason, meta, h)
}

// decodePDU reports one framed PDU, whatever carried it, and pairs it.
func (d *Decoder) decodePDU(c *Conn, dir Direction, tid uint16, unit uint8, p []byte, reason Reason, meta *Meta, h Handler) {
	m := d.begin(&d.msg, dir, meta)
	m.TID = tid
	m.Unit = unit
	m.Malformed = reason
	m.PDU = p
	fc := p[0]
	m.FC = functionOf(dir, fc)
	if dir == Request {
		d.request(m, p)
		d.track(c, m, h)
		h.Message(m)
		return
	}
	req, ok := c.take(m.TID, m.Unit, m.FC)
	var r *pendingRequest
	if ok {
		r = &req
		m.RequestFrame = req.frame
		if req.time != noTime && !meta.Time.IsZero() {
			m.Latency = durationBetween(req.time, meta.Time)
		}
	}
	if fc&ExceptionBit != 0 {
		d.exception(m, p)
		m.Outcome = OutcomeException
		if r != nil && r.flags&pendingHasAddr != 0 {
			// What the refused request asked for: rules and the ops log
			// say which address a device rejected.
			m.HasAddr, m.Addr, m.Count = true, r.addr, r.count
		}
	} else {
		d.response(m, p, r)
		m.Outcome = OutcomeOK
	}
	if !ok {
		m.Outcome = OutcomeOrphan
	}
	h.Message(m)
}

// fixed flags a PDU that is not n bytes long and says whether its first n
// bytes can be read.
func (m *Message) fixed(p []byte, n int) bool {
	if len(p) != n {
		m.flag(LengthMismatch)
	}
	return len(p) >= n
}

// counted returns the data after a byte count, flagging a byte count that
// disagrees with the data.
func (m *Message) counted(p []byte) (bc int, data []byte, ok bool) {
	if len(p) < countedHdrLen {
		m.flag(LengthMismatch)
		return 0, nil, false
	}
	bc, data = int(p[1]), p[countedHdrLen:]
	if len(data) != bc {
		m.flag(ByteCountMismatch)
		if len(data) > bc {
			data = data[:bc]
		}
	}
	return bc, data, true
}

// readValues gives m the values of a read response: n coils, or
// registers when n < 0. With LazyValues it only notes where they are,
// for Message.DecodeValues.
func (d *Decoder) readValues(m *Message, data []byte, n int) {
	if d.lazy {
		d.lazyData, d.lazyN, m.lazy = data, n, d
		return
	}
	m.Values = d.unpack(data, n)
}

// unpack decodes n coils, or registers when n < 0.
func (d *Decoder) unpack(data []byte, n int) []uint16 {
	if n < 0 {
		return d.registers(data)
	}
	return d.coils(data, n)
}

func (d *Decoder) registers(data []byte) []uint16 {
	n := min(len(data)/2, len(d.values))
	v := d.values[:n]
	i := 0
	// Four registers from one 8-octet load: a read response carries
	// up to 125 of them, and this runs for every one.
	for ; i+4 <= n; i += 4 {
		x := binary.BigEndian.Uint64(data[2*i:])
		*(*[4]uint16)(v[i:]) = [4]uint16{uint16(x >> 48), uint16(x >> 32), uint16(x >> 16), uint16(x)}
	}
	for ; i < n; i++ {
		v[i] = be16(data[2*i:])
	}
	return v
}

// coils unpacks up to count bits, least significant bit first: a whole
// octet at a time from coilOctets, the rest bit by bit.
func (d *Decoder) coils(data []byte, count int) []uint16 {
	n := min(count, 8*len(data), len(d.values))
	v := d.values[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		*(*[8]uint16)(v[i:]) = coilOctets[data[i/8]]
	}
	for ; i < n; i++ {
		v[i] = uint16(data[i/8]>>(i%8)) & 1
	}
	return v
}

// coilOctets holds each octet's eight coils, least significant bit
// first, as 0 and 1.
var coilOctets = func() (t [256][8]uint16) {
	for b := range t {
		for j := range t[b] {
			t[b][j] = uint16(b>>j) & 1
		}
	}
	return t
}()

func (d *Decoder) request(m *Message, p []byte) {
	fc := p[0]
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
		if !m.fixed(p, addrLen) {
			return
		}
		m.HasAddr, m.Addr, m.Count = true, be16(p[1:]), be16(p[3:])
		limit := maxReadRegisters
		if fc <= FuncReadDiscreteInputs {
			limit = maxReadBits
		}
		if m.Count == 0 || int(m.Count) > limit {
			m.flag(BadQuantity)
		}
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncMaskWriteRegister:
		d.writeSingle(m, p)
	case FuncReadExceptionStatus, FuncGetCommEventCounter, FuncGetCommEventLog, FuncReportServerID:
		m.fixed(p, fcLen)
	case FuncDiagnostics:
		d.diagnostics(m, p, Request)
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		d.writeMultiple(m, p)
	case FuncReadFileRecord:
		d.fileRequest(m, p, false)
	case FuncWriteFileRecord:
		d.fileRequest(m, p, true)
	case FuncReadWriteMultipleRegisters:
		d.readWriteRequest(m, p)
	case FuncReadFIFOQueue:
		if m.fixed(p, fifoReqLen) {
			m.HasAddr, m.Addr = true, be16(p[1:])
		}
	case FuncEncapsulatedInterface:
		d.encapsulated(m, p, Request, nil)
	default:
		m.classify()
	}
}

func (d *Decoder) response(m *Message, p []byte, req *pendingRequest) {
	switch fc := p[0]; fc {
	case FuncReadCoils, FuncReadDiscreteInputs:
		bc, data, ok := m.counted(p)
		if !ok {
			return
		}
		count := 8 * len(data)
		if req != nil {
			m.HasAddr, m.Addr, m.Count = true, req.addr, req.count
			count = int(req.count)
			if bc != dataBytes(fc, count) {
				m.flag(ByteCountMismatch)
			}
		}
		d.readValues(m, data, count)
	case FuncReadHoldingRegisters, FuncReadInputRegisters, FuncReadWriteMultipleRegisters:
		bc, data, ok := m.counted(p)
		if !ok {
			return
		}
		if bc%2 != 0 || bc > 2*maxReadRegisters {
			m.flag(ByteCountMismatch)
		}
		if req != nil {
			m.HasAddr, m.Addr, m.Count = true, req.addr, req.count
			if fc == FuncReadWriteMultipleRegisters {
				m.Addr, m.Count = req.raddr, req.rcount
				m.ReadAddr, m.ReadCount = req.raddr, req.rcount
			}
			if bc != 2*int(m.Count) {
				m.flag(ByteCountMismatch)
			}
		}
		d.readValues(m, data, -1)
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncMaskWriteRegister:
		d.writeSingle(m, p)
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		if !m.fixed(p, addrLen) {
			return
		}
		m.HasAddr, m.Addr, m.Count = true, be16(p[1:]), be16(p[3:])
		m.quantity(fc, int(m.Count))
	case FuncReadExceptionStatus:
		if m.fixed(p, statusRespLen) {
			m.Status = uint16(p[1])
		}
	case FuncGetCommEventCounter:
		if m.fixed(p, eventCtrLen) {
			m.Status, m.EventCount = be16(p[1:]), be16(p[3:])
			m.checkStatus()
		}
	case FuncGetCommEventLog:
		bc, data, ok := m.counted(p)
		if !ok {
			return
		}
		if bc < eventLogHdrLen || bc > eventLogHdrLen+maxEvents || len(data) < eventLogHdrLen {
			m.flag(ByteCountMismatch)
		}
		if len(data) >= eventLogHdrLen {
			m.Status, m.EventCount, m.MessageCount = be16(data), be16(data[2:]), be16(data[4:])
			m.Data = data[eventLogHdrLen:]
			m.checkStatus()
		}
	case FuncDiagnostics:
		d.diagnostics(m, p, Response)
	case FuncReportServerID:
		if _, data, ok := m.counted(p); ok {
			m.Data = data
		}
	case FuncReadFileRecord:
		d.fileReadResponse(m, p)
	case FuncWriteFileRecord:
		d.fileRequest(m, p, true)
	case FuncReadFIFOQueue:
		d.fifoResponse(m, p, req)
	case FuncEncapsulatedInterface:
		d.encapsulated(m, p, Response, req)
	default:
		m.classify()
	}
}

// classify flags function codes the decoder has no layout for.
func (m *Message) classify() {
	switch Class(m.FC) {
	case ClassReserved:
		m.flag(ReservedFunction)
	case ClassUnknown:
		m.flag(UnknownFunction)
	}
}

func (m *Message) quantity(fc uint8, n int) {
	limit := maxWriteRegisters
	if fc == FuncWriteMultipleCoils {
		limit = maxWriteBits
	}
	if n == 0 || n > limit {
		m.flag(BadQuantity)
	}
}

// checkStatus flags an FC 11/12 status word other than ready or busy.
func (m *Message) checkStatus() {
	if m.Status != 0 && m.Status != 0xFFFF {
		m.flag(BadFieldValue)
	}
}

func (d *Decoder) exception(m *Message, p []byte) {
	m.classify()
	if !m.fixed(p, exceptionLen) {
		return
	}
	m.Exception = p[1]
	if ExceptionName(m.Exception) == "unknown" {
		m.flag(BadExceptionCode)
	}
}

// writeSingle decodes FC 5, 6 and 22, whose responses echo the request.
func (d *Decoder) writeSingle(m *Message, p []byte) {
	n := addrLen
	if p[0] == FuncMaskWriteRegister {
		n = maskWriteLen
	}
	if !m.fixed(p, n) {
		return
	}
	m.HasAddr, m.Addr, m.Count = true, be16(p[1:]), 1
	v := be16(p[3:])
	switch p[0] {
	case FuncWriteSingleCoil:
		switch v {
		case coilOn:
			v = 1
		case coilOff:
		default:
			m.flag(BadCoilValue)
		}
	case FuncMaskWriteRegister:
		m.AndMask, m.OrMask = v, be16(p[5:])
		return
	}
	d.values[0] = v
	m.Values = d.values[:1]
}

func (d *Decoder) writeMultiple(m *Message, p []byte) {
	fc := p[0]
	if len(p) < multiHdrLen {
		m.flag(LengthMismatch)
		if len(p) >= addrLen {
			m.HasAddr, m.Addr, m.Count = true, be16(p[1:]), be16(p[3:])
		}
		return
	}
	m.HasAddr, m.Addr, m.Count = true, be16(p[1:]), be16(p[3:])
	m.quantity(fc, int(m.Count))
	bc, data := int(p[5]), p[multiHdrLen:]
	if bc != dataBytes(fc, int(m.Count)) || len(data) != bc {
		m.flag(ByteCountMismatch)
	}
	data = data[:min(bc, len(data))]
	if fc == FuncWriteMultipleCoils {
		m.Values = d.coils(data, int(m.Count))
	} else {
		m.Values = d.registers(data)
	}
}

func (d *Decoder) readWriteRequest(m *Message, p []byte) {
	if len(p) < rwHdrLen {
		m.flag(LengthMismatch)
		if len(p) >= addrLen {
			m.ReadAddr, m.ReadCount = be16(p[1:]), be16(p[3:])
		}
		return
	}
	m.ReadAddr, m.ReadCount = be16(p[1:]), be16(p[3:])
	m.HasAddr, m.Addr, m.Count = true, be16(p[5:]), be16(p[7:])
	if m.ReadCount == 0 || m.ReadCount > maxReadRegisters || m.Count == 0 || m.Count > maxRWWriteRegs {
		m.flag(BadQuantity)
	}
	bc, data := int(p[9]), p[rwHdrLen:]
	if bc != 2*int(m.Count) || len(data) != bc {
		m.flag(ByteCountMismatch)
	}
	m.Values = d.registers(data[:min(bc, len(data))])
}

func (d *Decoder) fifoResponse(m *Message, p []byte, req *pendingRequest) {
	if req != nil {
		m.HasAddr, m.Addr = true, req.addr
	}
	if len(p) < fifoRespHdrLen {
		m.flag(LengthMismatch)
		return
	}
	bc, data := int(be16(p[1:])), p[fifoRespHdrLen:]
	m.Count = be16(p[3:])
	if len(p)-3 != bc || bc != 2+2*int(m.Count) {
		m.flag(ByteCountMismatch)
	}
	if m.Count > maxFIFOCount {
		m.flag(BadQuantity)
	}
	m.Values = d.registers(data[:min(2*int(m.Count), len(data))])
}

func (d *Decoder) diagnostics(m *Message, p []byte, dir Direction) {
	if len(p) < diagHdrLen {
		m.flag(LengthMismatch)
		return
	}
	m.Sub = be16(p[1:])
	m.Data = p[diagHdrLen:]
	if len(m.Data)%2 == 0 {
		m.Values = d.registers(m.Data)
	}
	if !knownSub(m.Sub) {
		m.flag(UnknownSubFunction)
		return
	}
	if m.Sub == SubReturnQueryData {
		return
	}
	if len(m.Data) != 2 {
		m.flag(LengthMismatch)
		return
	}
	v := be16(m.Data)
	switch m.Sub {
	case SubRestartCommunicationsOption:
		if v != 0 && v != diagRestartClear {
			m.flag(BadFieldValue)
		}
	case SubChangeASCIIInputDelimiter:
		if v&0xFF != 0 {
			m.flag(BadFieldValue)
		}
	case SubReturnDiagnosticRegister, SubReturnBusMessageCount, SubReturnBusCommunicationErrorCount,
		SubReturnBusExceptionErrorCount, SubReturnServerMessageCount, SubReturnServerNoResponseCount,
		SubReturnServerNAKCount, SubReturnServerBusyCount, SubReturnBusCharacterOverrunCount:
		// Responses carry the register or counter.
		if dir == Request && v != 0 {
			m.flag(BadFieldValue)
		}
	default:
		if v != 0 {
			m.flag(BadFieldValue)
		}
	}
}

// fileRequest decodes FC 20 requests and FC 21 requests and responses.
func (d *Decoder) fileRequest(m *Message, p []byte, write bool) {
	_, data, ok := m.counted(p)
	if !ok {
		return
	}
	n := 0
	for off := 0; off < len(data); {
		if off+fileSubReqLen > len(data) || n == len(d.records) {
			m.flag(ByteCountMismatch)
			break
		}
		r := &d.records[n]
		*r = FileRecord{
			RefType: data[off],
			File:    be16(data[off+1:]),
			Record:  be16(data[off+3:]),
			Length:  be16(data[off+5:]),
		}
		off += fileSubReqLen
		if write {
			end := off + 2*int(r.Length)
			if end > len(data) {
				m.flag(ByteCountMismatch)
				end = len(data)
			}
			r.Data = data[off:end]
			off = end
		}
		m.checkRecord(r)
		n++
	}
	if n == 0 {
		m.flag(ByteCountMismatch)
	}
	m.Records = d.records[:n]
}

func (d *Decoder) fileReadResponse(m *Message, p []byte) {
	_, data, ok := m.counted(p)
	if !ok {
		return
	}
	n := 0
	for off := 0; off < len(data); {
		if off+fileSubRespHdr > len(data) || n == len(d.records) {
			m.flag(ByteCountMismatch)
			break
		}
		size := int(data[off]) // reference type and data
		end := off + 1 + size
		if size < 1 || size%2 == 0 || end > len(data) {
			m.flag(ByteCountMismatch)
			end = min(max(end, off+fileSubRespHdr), len(data))
		}
		r := &d.records[n]
		*r = FileRecord{RefType: data[off+1], Data: data[off+fileSubRespHdr : end]}
		r.Length = uint16(len(r.Data) / 2)
		if r.RefType != fileRefType {
			m.flag(BadReferenceType)
		}
		off = end
		n++
	}
	m.Records = d.records[:n]
}

func (m *Message) checkRecord(r *FileRecord) {
	switch {
	case r.RefType != fileRefType:
		m.flag(BadReferenceType)
	case r.File == 0 || r.Record > maxFileRecordNum:
		m.flag(BadFieldValue)
	}
}

func (d *Decoder) encapsulated(m *Message, p []byte, dir Direction, req *pendingRequest) {
	if len(p) < meiHdrLen {
		m.flag(LengthMismatch)
		return
	}
	m.MEI = p[1]
	switch m.MEI {
	case MEICANopenGeneralReference:
		m.Data = p[meiHdrLen:]
	case MEIReadDeviceID:
		if dir == Request {
			if m.fixed(p, devIDReqLen) {
				m.DeviceIDCode, m.ObjectID = p[2], p[3]
				if m.DeviceIDCode == 0 || m.DeviceIDCode > lastDevIDCode {
					m.flag(BadFieldValue)
				}
			}
			return
		}
		d.deviceID(m, p, req)
	default:
		m.flag(UnknownMEI)
	}
}

func (d *Decoder) deviceID(m *Message, p []byte, req *pendingRequest) {
	if req != nil {
		m.ObjectID = req.objectID()
	}
	if len(p) < devIDRespHdr {
		m.flag(LengthMismatch)
		return
	}
	m.DeviceIDCode, m.Conformity = p[2], p[3]
	m.MoreFollows, m.NextObjectID, m.NumObjects = p[4] == moreFollows, p[5], p[6]
	if m.DeviceIDCode == 0 || m.DeviceIDCode > lastDevIDCode ||
		p[4] != 0 && p[4] != moreFollows ||
		m.Conformity&^0x80 < 1 || m.Conformity&^0x80 > 3 {
		m.flag(BadFieldValue)
	}
	off, n := devIDRespHdr, 0
	for n < int(m.NumObjects) && n < len(d.objects) {
		if off+objectHdrLen > len(p) {
			break
		}
		end := off + objectHdrLen + int(p[off+1])
		if end > len(p) {
			break
		}
		d.objects[n] = DeviceObject{ID: p[off], Value: p[off+objectHdrLen : end]}
		off = end
		n++
	}
	if n != int(m.NumObjects) {
		m.flag(ByteCountMismatch)
	} else if off != len(p) {
		m.flag(LengthMismatch)
	}
	m.Objects = d.objects[:n]
}
