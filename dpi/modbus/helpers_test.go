package modbus

import (
	"reflect"
	"testing"
	"time"
)

// recorder keeps deep copies of the messages it is handed.
type recorder struct{ msgs []Message }

func (r *recorder) Message(m *Message) { r.msgs = append(r.msgs, clone(m)) }

func clone(m *Message) Message {
	c := *m
	c.Values = cloneSlice(m.Values)
	c.PDU = cloneSlice(m.PDU)
	c.Data = cloneSlice(m.Data)
	c.Objects = nil
	for _, o := range m.Objects {
		c.Objects = append(c.Objects, DeviceObject{ID: o.ID, Value: cloneSlice(o.Value)})
	}
	c.Records = nil
	for _, r := range m.Records {
		r.Data = cloneSlice(r.Data)
		c.Records = append(c.Records, r)
	}
	return c
}

func cloneSlice[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

// adu builds an ADU with a correct MBAP header.
func adu(tid uint16, unit uint8, pdu ...byte) []byte {
	n := len(pdu) + 1
	b := []byte{byte(tid >> 8), byte(tid), 0, 0, byte(n >> 8), byte(n), unit}
	return append(b, pdu...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func at(frame uint64, d time.Duration) Meta {
	return Meta{Time: t0.Add(d), Frame: frame}
}

// strip clears the fields a decoding table does not spell out.
func strip(m Message) Message {
	m.Meta = Meta{}
	m.PDU = nil
	m.Latency = 0
	m.RequestFrame = 0
	return m
}

func diffMessage(t *testing.T, what string, got, want Message) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// feedAll feeds data in chunks cut at the given offsets, keeping the
// unconsumed tail the way package dpi does, and returns what is left.
func feedAll(d *Decoder, c *Conn, dir Direction, data []byte, cuts []int, meta Meta, h Handler) []byte {
	var buf []byte
	prev := 0
	for _, cut := range append(cuts, len(data)) {
		buf = append(buf, data[prev:cut]...)
		prev = cut
		n := d.Feed(c, dir, buf, meta, h)
		buf = append([]byte(nil), buf[n:]...)
	}
	return buf
}
