package sensor

import (
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tapwatch/tapwatch/dpi"
	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/dpi/modbus"
	"github.com/tapwatch/tapwatch/dpi/proto"
)

// tsLayout is RFC 3339 with all nine digits of nanoseconds, so that lines
// sort and align as text.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

// OpsWriter writes the operations log: one JSON object per line for every
// decoded message. It encodes by hand into a reused buffer, so writing a
// line allocates nothing.
type OpsWriter struct {
	w   io.Writer
	buf []byte
	err error
}

// NewOpsWriter writes lines to w. Buffer w if it is a file.
func NewOpsWriter(w io.Writer) *OpsWriter {
	return &OpsWriter{w: w, buf: make([]byte, 0, 4096)}
}

// Err is the first write error, if any.
func (o *OpsWriter) Err() error { return o.err }

// Message implements dpi.Handler: it writes one line for m. A message of
// a protocol the writer does not know is written when it is
// proto.Loggable, and skipped otherwise.
func (o *OpsWriter) Message(f *dpi.Flow, from dpi.Side, m any) {
	if o.err != nil {
		return
	}
	switch m := m.(type) {
	case *modbus.Message:
		o.writeModbus(f, m)
	case *dnp3.Message:
		o.writeDNP3(f, from == dpi.FromServer, m)
	case proto.Loggable:
		meta := m.Packet()
		b := o.head(o.buf[:0], meta.Time, meta.Frame, f.App.String(), f, from == dpi.FromServer)
		o.end(m.AppendFields(b))
	}
}

// writeModbus writes one Modbus message.
func (o *OpsWriter) writeModbus(f *dpi.Flow, m *modbus.Message) {
	b := o.head(o.buf[:0], m.Time, m.Frame, proto.Modbus.String(), f, m.Dir == modbus.Response)
	switch m.Dir {
	case modbus.Request:
		b = append(b, `,"dir":"request"`...)
	case modbus.Response:
		b = append(b, `,"dir":"response"`...)
	}
	// A frame with a bad CRC says which slave and function it claims,
	// though it cannot be trusted to have one.
	if m.HasFunction() || m.Malformed == modbus.BadCRC {
		if f.Transport != dpi.RTUOverTCP { // RTU frames have no transaction id
			b = append(b, `,"tid":`...)
			b = strconv.AppendUint(b, uint64(m.TID), 10)
		}
		b = append(b, `,"unit":`...)
		b = strconv.AppendUint(b, uint64(m.Unit), 10)
		b = append(b, `,"fc":`...)
		b = strconv.AppendUint(b, uint64(m.FC), 10)
		b = append(b, `,"fc_name":"`...)
		b = append(b, modbus.FunctionName(m.FC)...)
		b = append(b, '"')
	}
	if m.Exception != 0 {
		b = append(b, `,"exception":`...)
		b = strconv.AppendUint(b, uint64(m.Exception), 10)
		b = append(b, `,"exception_name":"`...)
		b = append(b, modbus.ExceptionName(m.Exception)...)
		b = append(b, '"')
	}
	if m.HasAddr {
		b = append(b, `,"addr":`...)
		b = strconv.AppendUint(b, uint64(m.Addr), 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, uint64(m.Count), 10)
	}
	m.DecodeValues() // a read response's, which dpi leaves undecoded
	if m.Values != nil {
		b = append(b, `,"values":[`...)
		for i, v := range m.Values {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(v), 10)
		}
		b = append(b, ']')
	}
	if m.FC == 23 && m.Dir == modbus.Request && m.HasFunction() {
		b = append(b, `,"read_addr":`...)
		b = strconv.AppendUint(b, uint64(m.ReadAddr), 10)
		b = append(b, `,"read_count":`...)
		b = strconv.AppendUint(b, uint64(m.ReadCount), 10)
	}
	if m.FC == 22 && m.Exception == 0 && m.HasFunction() {
		b = append(b, `,"and_mask":`...)
		b = strconv.AppendUint(b, uint64(m.AndMask), 10)
		b = append(b, `,"or_mask":`...)
		b = strconv.AppendUint(b, uint64(m.OrMask), 10)
	}
	if len(m.Records) > 0 {
		b = append(b, `,"records":[`...)
		for i, r := range m.Records {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"file":`...)
			b = strconv.AppendUint(b, uint64(r.File), 10)
			b = append(b, `,"record":`...)
			b = strconv.AppendUint(b, uint64(r.Record), 10)
			b = append(b, `,"length":`...)
			b = strconv.AppendUint(b, uint64(r.Length), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if m.FC == 8 && m.Exception == 0 && m.Malformed == 0 {
		b = append(b, `,"sub":`...)
		b = strconv.AppendUint(b, uint64(m.Sub), 10)
		b = append(b, `,"sub_name":"`...)
		b = append(b, modbus.SubFunctionName(m.Sub)...)
		b = append(b, '"')
	}
	if m.FC == 43 && m.Exception == 0 && m.Malformed == 0 {
		b = append(b, `,"mei":`...)
		b = strconv.AppendUint(b, uint64(m.MEI), 10)
	}
	if len(m.Objects) > 0 {
		b = append(b, `,"objects":[`...)
		for i, obj := range m.Objects {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = strconv.AppendUint(b, uint64(obj.ID), 10)
			b = append(b, `,"name":"`...)
			b = append(b, modbus.ObjectName(obj.ID)...) // identifier-like ASCII
			b = append(b, `","value":`...)
			b = appendJSONString(b, obj.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	switch m.Outcome {
	case modbus.OutcomeOK, modbus.OutcomeException:
		b = append(b, `,"request_frame":`...)
		b = strconv.AppendUint(b, m.RequestFrame, 10)
		b = append(b, `,"latency_us":`...)
		b = strconv.AppendInt(b, m.Latency.Microseconds(), 10)
	case modbus.OutcomeOrphan:
		b = append(b, `,"orphan":true`...)
	case modbus.OutcomeUnanswered:
		b = append(b, `,"unanswered":true`...)
	}
	if m.Malformed != 0 {
		b = append(b, `,"malformed":"`...)
		b = append(b, m.Malformed.String()...)
		b = append(b, '"')
		if m.AfterLoss {
			b = append(b, `,"after_loss":true`...)
		}
	}
	o.end(b)
}

// head starts a line with the fields every protocol shares.
func (o *OpsWriter) head(b []byte, ts time.Time, frame uint64, proto string, f *dpi.Flow, fromServer bool) []byte {
	b = append(b, `{"ts":"`...)
	b = ts.UTC().AppendFormat(b, tsLayout)
	b = append(b, `","frame":`...)
	b = strconv.AppendUint(b, frame, 10)
	b = append(b, `,"proto":"`...)
	b = append(b, proto...)
	b = append(b, `","transport":"`...)
	b = append(b, f.Transport.String()...)
	src, dst := f.Client, f.Server
	if fromServer {
		src, dst = dst, src
	}
	b = append(b, `","src":"`...)
	b = src.Addr().AppendTo(b)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, `,"dst":"`...)
	b = dst.Addr().AppendTo(b)
	b = append(b, `","dport":`...)
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	if f.VLAN != 0 {
		b = append(b, `,"vlan":`...)
		b = strconv.AppendUint(b, uint64(f.VLAN), 10)
	}
	return b
}

// end finishes a line and writes it.
func (o *OpsWriter) end(b []byte) {
	b = append(b, "}\n"...)
	o.buf = b
	_, o.err = o.w.Write(b)
}

// appendJSONString appends s as a JSON string. Bytes that are not valid
// UTF-8 (device identification strings are not always text) become U+FFFD.
func appendJSONString(b []byte, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		s = s[n:]
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// RotatingFile is an append-only file that is renamed NAME.1 (replacing
// the previous NAME.1) and started again when it reaches max bytes: the
// daemon's operations log, bounded on an SD card. Not safe for
// concurrent use.
type RotatingFile struct {
	path string
	max  int64
	f    *os.File
	size int64
}

// OpenRotating opens (appends to) path.
func OpenRotating(path string, max int64) (*RotatingFile, error) {
	r := &RotatingFile{path: path, max: max}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past max.
func (r *RotatingFile) Write(p []byte) (int, error) {
	if r.size > 0 && r.size+int64(len(p)) > r.max {
		r.f.Close()
		if err := os.Rename(r.path, r.path+".1"); err != nil {
			return 0, err
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// Close closes the file.
func (r *RotatingFile) Close() error { return r.f.Close() }
