package modbus

import "testing"

// decodeCase is one ADU written out one field per line. When req is set it
// is fed first as the request the ADU answers (with transaction id 1 and
// unit 0x11, as in every case below).
type decodeCase struct {
	name string
	dir  Direction
	req  []byte
	in   []byte
	keep int // bytes Feed leaves for later
	want Message
}

// The function code examples follow the specification's own (§6).
var functionCases = []decodeCase{
	{
		name: "read coils request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x01,       // function code
			0x00, 0x13, // starting address
			0x00, 0x13, // quantity of coils: 19
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 1, HasAddr: true, Addr: 0x13, Count: 19},
	},
	{
		name: "read coils response",
		dir:  Response,
		req:  adu(1, 0x11, 0x01, 0x00, 0x13, 0x00, 0x13),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,             // unit id
			0x01,             // function code
			0x03,             // byte count
			0xCD, 0x6B, 0x05, // coil status 20–27, 28–35, 36–38
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 1, HasAddr: true, Addr: 0x13, Count: 19,
			Values:  []uint16{1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1},
			Outcome: OutcomeOK},
	},
	{
		name: "read discrete inputs request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x02,       // function code
			0x00, 0xC4, // starting address
			0x00, 0x16, // quantity of inputs: 22
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 2, HasAddr: true, Addr: 0xC4, Count: 22},
	},
	{
		name: "read discrete inputs response",
		dir:  Response,
		req:  adu(1, 0x11, 0x02, 0x00, 0xC4, 0x00, 0x16),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,             // unit id
			0x02,             // function code
			0x03,             // byte count
			0xAC, 0xDB, 0x35, // input status
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 2, HasAddr: true, Addr: 0xC4, Count: 22,
			Values:  []uint16{0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1},
			Outcome: OutcomeOK},
	},
	{
		name: "read holding registers request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x03,       // function code
			0x00, 0x6B, // starting address
			0x00, 0x03, // quantity of registers
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Addr: 0x6B, Count: 3},
	},
	{
		name: "read holding registers response",
		dir:  Response,
		req:  adu(1, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x09, // length
			0x11,       // unit id
			0x03,       // function code
			0x06,       // byte count
			0x02, 0x2B, // register 108
			0x00, 0x00, // register 109
			0x00, 0x64, // register 110
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Addr: 0x6B, Count: 3,
			Values: []uint16{0x022B, 0, 0x64}, Outcome: OutcomeOK},
	},
	{
		name: "read input registers request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x04,       // function code
			0x00, 0x08, // starting address
			0x00, 0x01, // quantity of input registers
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 4, HasAddr: true, Addr: 8, Count: 1},
	},
	{
		name: "read input registers response",
		dir:  Response,
		req:  adu(1, 0x11, 0x04, 0x00, 0x08, 0x00, 0x01),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x05, // length
			0x11,       // unit id
			0x04,       // function code
			0x02,       // byte count
			0x00, 0x0A, // register 9
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 4, HasAddr: true, Addr: 8, Count: 1,
			Values: []uint16{10}, Outcome: OutcomeOK},
	},
	{
		name: "write single coil request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x05,       // function code
			0x00, 0xAC, // output address
			0xFF, 0x00, // output value: on
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 5, HasAddr: true, Addr: 0xAC, Count: 1,
			Values: []uint16{1}},
	},
	{
		name: "write single coil response",
		dir:  Response,
		req:  adu(1, 0x11, 0x05, 0x00, 0xAC, 0x00, 0x00),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x05,       // function code
			0x00, 0xAC, // output address
			0x00, 0x00, // output value: off
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 5, HasAddr: true, Addr: 0xAC, Count: 1,
			Values: []uint16{0}, Outcome: OutcomeOK},
	},
	{
		name: "write single register request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x06,       // function code
			0x00, 0x01, // register address
			0x00, 0x03, // register value
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 6, HasAddr: true, Addr: 1, Count: 1,
			Values: []uint16{3}},
	},
	{
		name: "write single register response",
		dir:  Response,
		req:  adu(1, 0x11, 0x06, 0x00, 0x01, 0x00, 0x03),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x06,       // function code
			0x00, 0x01, // register address
			0x00, 0x03, // register value
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 6, HasAddr: true, Addr: 1, Count: 1,
			Values: []uint16{3}, Outcome: OutcomeOK},
	},
	{
		name: "read exception status request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x07, // function code
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 7},
	},
	{
		name: "read exception status response",
		dir:  Response,
		req:  adu(1, 0x11, 0x07),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x07, // function code
			0x6D, // output data
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 7, Status: 0x6D, Outcome: OutcomeOK},
	},
	{
		name: "diagnostics return query data request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x00, // sub-function: return query data
			0xA5, 0x37, // data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 8, Sub: 0,
			Data: []byte{0xA5, 0x37}, Values: []uint16{0xA537}},
	},
	{
		name: "diagnostics return query data response",
		dir:  Response,
		req:  adu(1, 0x11, 0x08, 0x00, 0x00, 0xA5, 0x37),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x00, // sub-function: return query data
			0xA5, 0x37, // data echoed
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 8, Sub: 0,
			Data: []byte{0xA5, 0x37}, Values: []uint16{0xA537}, Outcome: OutcomeOK},
	},
	{
		name: "diagnostics restart communications clearing the log",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x01, // sub-function: restart communications option
			0xFF, 0x00, // data: clear the communications event log
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 8, Sub: 1,
			Data: []byte{0xFF, 0x00}, Values: []uint16{0xFF00}},
	},
	{
		name: "diagnostics force listen only mode",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x04, // sub-function: force listen only mode
			0x00, 0x00, // data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 8, Sub: 4,
			Data: []byte{0, 0}, Values: []uint16{0}},
	},
	{
		name: "diagnostics return bus message count response",
		dir:  Response,
		req:  adu(1, 0x11, 0x08, 0x00, 0x0B, 0x00, 0x00),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x0B, // sub-function: return bus message count
			0x01, 0x2C, // count: 300
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 8, Sub: 11,
			Data: []byte{0x01, 0x2C}, Values: []uint16{300}, Outcome: OutcomeOK},
	},
	{
		name: "get comm event counter request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x0B, // function code
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 11},
	},
	{
		name: "get comm event counter response",
		dir:  Response,
		req:  adu(1, 0x11, 0x0B),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x0B,       // function code
			0xFF, 0xFF, // status: busy
			0x01, 0x08, // event count
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 11, Status: 0xFFFF, EventCount: 0x108,
			Outcome: OutcomeOK},
	},
	{
		name: "get comm event log request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x0C, // function code
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 12},
	},
	{
		name: "get comm event log response",
		dir:  Response,
		req:  adu(1, 0x11, 0x0C),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0B, // length
			0x11,       // unit id
			0x0C,       // function code
			0x08,       // byte count
			0x00, 0x00, // status
			0x01, 0x08, // event count
			0x01, 0x21, // message count
			0x20, 0x00, // events 0 and 1
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 12, Status: 0, EventCount: 0x108,
			MessageCount: 0x121, Data: []byte{0x20, 0x00}, Outcome: OutcomeOK},
	},
	{
		name: "write multiple coils request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x09, // length
			0x11,       // unit id
			0x0F,       // function code
			0x00, 0x13, // starting address
			0x00, 0x0A, // quantity of outputs: 10
			0x02,       // byte count
			0xCD, 0x01, // outputs value
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 15, HasAddr: true, Addr: 0x13, Count: 10,
			Values: []uint16{1, 0, 1, 1, 0, 0, 1, 1, 1, 0}},
	},
	{
		name: "write multiple coils response",
		dir:  Response,
		req:  adu(1, 0x11, 0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x0F,       // function code
			0x00, 0x13, // starting address
			0x00, 0x0A, // quantity of outputs
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 15, HasAddr: true, Addr: 0x13, Count: 10,
			Outcome: OutcomeOK},
	},
	{
		name: "write multiple registers request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0B, // length
			0x11,       // unit id
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity of registers
			0x04,       // byte count
			0x00, 0x0A, // register 1
			0x01, 0x02, // register 2
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 16, HasAddr: true, Addr: 1, Count: 2,
			Values: []uint16{10, 0x102}},
	},
	{
		name: "write multiple registers response",
		dir:  Response,
		req:  adu(1, 0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity of registers
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 16, HasAddr: true, Addr: 1, Count: 2,
			Outcome: OutcomeOK},
	},
	{
		name: "report server id request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x11, // function code
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 17},
	},
	{
		name: "report server id response",
		dir:  Response,
		req:  adu(1, 0x11, 0x11),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11, // unit id
			0x11, // function code
			0x03, // byte count
			0x2A, // server id (device specific)
			0xFF, // run indicator status: on
			0x01, // additional data
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 17, Data: []byte{0x2A, 0xFF, 0x01},
			Outcome: OutcomeOK},
	},
	{
		name: "read file record request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x11, // length
			0x11,       // unit id
			0x14,       // function code
			0x0E,       // byte count
			0x06,       // sub-request 1: reference type
			0x00, 0x04, // file number
			0x00, 0x01, // record number
			0x00, 0x02, // record length
			0x06,       // sub-request 2: reference type
			0x00, 0x03, // file number
			0x00, 0x09, // record number
			0x00, 0x02, // record length
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 20, Records: []FileRecord{
			{RefType: 6, File: 4, Record: 1, Length: 2},
			{RefType: 6, File: 3, Record: 9, Length: 2},
		}},
	},
	{
		name: "read file record response",
		dir:  Response,
		req:  adu(1, 0x11, 0x14, 0x0E, 6, 0, 4, 0, 1, 0, 2, 6, 0, 3, 0, 9, 0, 2),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0F, // length
			0x11,       // unit id
			0x14,       // function code
			0x0C,       // response data length
			0x05,       // sub-response 1: file response length
			0x06,       // reference type
			0x0D, 0xFE, // register data
			0x00, 0x20,
			0x05,       // sub-response 2: file response length
			0x06,       // reference type
			0x33, 0xCD, // register data
			0x00, 0x40,
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 20, Records: []FileRecord{
			{RefType: 6, Length: 2, Data: []byte{0x0D, 0xFE, 0x00, 0x20}},
			{RefType: 6, Length: 2, Data: []byte{0x33, 0xCD, 0x00, 0x40}},
		}, Outcome: OutcomeOK},
	},
	{
		name: "write file record request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x10, // length
			0x11,       // unit id
			0x15,       // function code
			0x0D,       // request data length
			0x06,       // reference type
			0x00, 0x04, // file number
			0x00, 0x07, // record number
			0x00, 0x03, // record length
			0x06, 0xAF, // record data
			0x04, 0xBE,
			0x10, 0x0D,
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 21, Records: []FileRecord{
			{RefType: 6, File: 4, Record: 7, Length: 3, Data: []byte{0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D}},
		}},
	},
	{
		name: "write file record response",
		dir:  Response,
		req:  adu(1, 0x11, 0x15, 0x0D, 6, 0, 4, 0, 7, 0, 3, 0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x10, // length
			0x11,       // unit id
			0x15,       // function code
			0x0D,       // response data length
			0x06,       // reference type
			0x00, 0x04, // file number
			0x00, 0x07, // record number
			0x00, 0x03, // record length
			0x06, 0xAF, // record data
			0x04, 0xBE,
			0x10, 0x0D,
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 21, Records: []FileRecord{
			{RefType: 6, File: 4, Record: 7, Length: 3, Data: []byte{0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D}},
		}, Outcome: OutcomeOK},
	},
	{
		name: "mask write register request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x08, // length
			0x11,       // unit id
			0x16,       // function code
			0x00, 0x04, // reference address
			0x00, 0xF2, // AND mask
			0x00, 0x25, // OR mask
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 22, HasAddr: true, Addr: 4, Count: 1,
			AndMask: 0xF2, OrMask: 0x25},
	},
	{
		name: "mask write register response",
		dir:  Response,
		req:  adu(1, 0x11, 0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x08, // length
			0x11,       // unit id
			0x16,       // function code
			0x00, 0x04, // reference address
			0x00, 0xF2, // AND mask
			0x00, 0x25, // OR mask
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 22, HasAddr: true, Addr: 4, Count: 1,
			AndMask: 0xF2, OrMask: 0x25, Outcome: OutcomeOK},
	},
	{
		name: "read/write multiple registers request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x11, // length
			0x11,       // unit id
			0x17,       // function code
			0x00, 0x03, // read starting address
			0x00, 0x06, // quantity to read
			0x00, 0x0E, // write starting address
			0x00, 0x03, // quantity to write
			0x06,       // write byte count
			0x00, 0xFF, // write registers
			0x00, 0xFF,
			0x00, 0xFF,
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 23, HasAddr: true, Addr: 0x0E, Count: 3,
			Values: []uint16{0xFF, 0xFF, 0xFF}, ReadAddr: 3, ReadCount: 6},
	},
	{
		name: "read/write multiple registers response",
		dir:  Response,
		req:  adu(1, 0x11, 0x17, 0, 3, 0, 6, 0, 0x0E, 0, 3, 6, 0, 0xFF, 0, 0xFF, 0, 0xFF),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0F, // length
			0x11,       // unit id
			0x17,       // function code
			0x0C,       // byte count
			0x00, 0xFE, // read registers
			0x0A, 0xCD,
			0x00, 0x01,
			0x00, 0x03,
			0x00, 0x0D,
			0x00, 0xFF,
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 23, HasAddr: true, Addr: 3, Count: 6,
			Values: []uint16{0xFE, 0xACD, 1, 3, 0xD, 0xFF}, ReadAddr: 3, ReadCount: 6, Outcome: OutcomeOK},
	},
	{
		name: "read FIFO queue request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x04, // length
			0x11,       // unit id
			0x18,       // function code
			0x04, 0xDE, // FIFO pointer address
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 24, HasAddr: true, Addr: 0x4DE},
	},
	{
		name: "read FIFO queue response",
		dir:  Response,
		req:  adu(1, 0x11, 0x18, 0x04, 0xDE),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0A, // length
			0x11,       // unit id
			0x18,       // function code
			0x00, 0x06, // byte count
			0x00, 0x02, // FIFO count
			0x01, 0xB8, // FIFO value register
			0x12, 0x84,
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 24, HasAddr: true, Addr: 0x4DE, Count: 2,
			Values: []uint16{0x1B8, 0x1284}, Outcome: OutcomeOK},
	},
	{
		name: "read device identification request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x05, // length
			0x11, // unit id
			0x2B, // function code
			0x0E, // MEI type: read device identification
			0x01, // read device id code: basic
			0x00, // object id: VendorName
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 1, ObjectID: 0},
	},
	{
		name: "read device identification response",
		dir:  Response,
		req:  adu(1, 0x11, 0x2B, 0x0E, 0x01, 0x00),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x18, // length
			0x11,               // unit id
			0x2B,               // function code
			0x0E,               // MEI type
			0x01,               // read device id code
			0x01,               // conformity level: basic, stream only
			0x00,               // more follows: no
			0x00,               // next object id
			0x03,               // number of objects
			0x00,               // object id: VendorName
			0x04,               // object length
			'A', 'C', 'M', 'E', // object value
			0x01,     // object id: ProductCode
			0x02,     // object length
			'P', '1', // object value
			0x02,               // object id: MajorMinorRevision
			0x04,               // object length
			'V', '1', '.', '2', // object value
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 1, Conformity: 1,
			NumObjects: 3, Objects: []DeviceObject{
				{ID: 0, Value: []byte("ACME")},
				{ID: 1, Value: []byte("P1")},
				{ID: 2, Value: []byte("V1.2")},
			}, Outcome: OutcomeOK},
	},
	{
		name: "read device identification response, more follows",
		dir:  Response,
		req:  adu(1, 0x11, 0x2B, 0x0E, 0x03, 0x00),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0C, // length
			0x11,     // unit id
			0x2B,     // function code
			0x0E,     // MEI type
			0x03,     // read device id code: extended
			0x83,     // conformity level: extended, individual access
			0xFF,     // more follows: yes
			0x05,     // next object id
			0x01,     // number of objects
			0x04,     // object id: ProductName
			0x02,     // object length
			'P', 'X', // object value
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 3, Conformity: 0x83,
			MoreFollows: true, NextObjectID: 5, NumObjects: 1,
			Objects: []DeviceObject{{ID: 4, Value: []byte("PX")}}, Outcome: OutcomeOK},
	},
	{
		name: "CANopen general reference request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,             // unit id
			0x2B,             // function code
			0x0D,             // MEI type: CANopen general reference
			0x40, 0x00, 0x10, // opaque CANopen data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 43, MEI: 13, Data: []byte{0x40, 0x00, 0x10}},
	},
	{
		name: "CANopen general reference response",
		dir:  Response,
		req:  adu(1, 0x11, 0x2B, 0x0D, 0x40, 0x00, 0x10),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x05, // length
			0x11,       // unit id
			0x2B,       // function code
			0x0D,       // MEI type: CANopen general reference
			0x60, 0x00, // opaque CANopen data
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 43, MEI: 13, Data: []byte{0x60, 0x00},
			Outcome: OutcomeOK},
	},
	{
		name: "exception response",
		dir:  Response,
		req:  adu(1, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x83, // function code with the exception bit
			0x02, // exception code: illegal data address
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 3, Exception: 2, HasAddr: true, Addr: 0x6B, Count: 3, Outcome: OutcomeException}, // the refused address, from the request
	},
	{
		name: "exception response to read device identification",
		dir:  Response,
		req:  adu(1, 0x11, 0x2B, 0x0E, 0x01, 0x00),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0xAB, // function code with the exception bit
			0x01, // exception code: illegal function
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 43, Exception: 1, Outcome: OutcomeException},
	},
	{
		name: "orphan exception response",
		dir:  Response,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x90, // function code with the exception bit
			0x0B, // exception code: gateway target failed to respond
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 16, Exception: 11, Outcome: OutcomeOrphan},
	},
	{
		name: "user-defined function",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x04, // length
			0x11,       // unit id
			0x41,       // function code 65: user-defined
			0xDE, 0xAD, // vendor data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 65},
	},
}

var malformedCases = []decodeCase{
	{
		name: "bad protocol id",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x01, // protocol id: not Modbus
			0x00, 0x06, // length
			0x11,       // unit id
			0x03,       // function code
			0x00, 0x00, // starting address
			0x00, 0x01, // quantity of registers
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Count: 1, Malformed: BadProtocolID},
	},
	{
		name: "length too short",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x01, // length: the unit id alone
			0x11, // unit id
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, Malformed: LengthTooShort},
	},
	{
		name: "length too long",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x04, 0x00, // length: 1024
			0x11,       // unit id
			0x03,       // function code
			0x00, 0x00, // starting address
			0x00, 0x01, // quantity of registers
		},
		keep: 2, // 0x00, 0x01 may begin a header
		want: Message{Dir: Request, TID: 1, Unit: 0x11, Malformed: LengthTooLong},
	},
	{
		name: "length mismatch",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x07, // length: one byte more than the PDU needs
			0x11,       // unit id
			0x03,       // function code
			0x00, 0x00, // starting address
			0x00, 0x01, // quantity of registers
			0x00, // extra byte
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Count: 1, Malformed: LengthMismatch},
	},
	{
		name: "reserved function",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x09, // function code 9: reserved
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 9, Malformed: ReservedFunction},
	},
	{
		name: "UMAS is reserved",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x04, // length
			0x11,       // unit id
			0x5A,       // function code 90
			0x00, 0x02, // UMAS session and function
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 90, Malformed: ReservedFunction},
	},
	{
		name: "unknown function",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x02, // length
			0x11, // unit id
			0x32, // function code 50
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 50, Malformed: UnknownFunction},
	},
	{
		name: "byte count disagrees with quantity",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0A, // length
			0x11,       // unit id
			0x10,       // function code
			0x00, 0x01, // starting address
			0x00, 0x02, // quantity of registers: 2
			0x03,             // byte count: should be 4
			0x00, 0x0A, 0x01, // register data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 16, HasAddr: true, Addr: 1, Count: 2,
			Values: []uint16{10}, Malformed: ByteCountMismatch},
	},
	{
		name: "byte count disagrees with the request",
		dir:  Response,
		req:  adu(1, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03),
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x07, // length
			0x11,       // unit id
			0x03,       // function code
			0x04,       // byte count: 3 registers were asked for
			0x02, 0x2B, // register 108
			0x00, 0x00, // register 109
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Addr: 0x6B, Count: 3,
			Values: []uint16{0x22B, 0}, Malformed: ByteCountMismatch, Outcome: OutcomeOK},
	},
	{
		name: "byte count disagrees with the MBAP length",
		dir:  Response,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x18,       // function code
			0x00, 0x06, // byte count: FIFO count and 2 registers
			0x00, 0x02, // FIFO count
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 24, Count: 2,
			Malformed: LengthMismatch, Outcome: OutcomeOrphan},
	},
	{
		name: "read quantity zero",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x01,       // function code
			0x00, 0x00, // starting address
			0x00, 0x00, // quantity of coils: 0
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 1, HasAddr: true, Malformed: BadQuantity},
	},
	{
		name: "read quantity over 125 registers",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x03,       // function code
			0x00, 0x00, // starting address
			0x00, 0x7E, // quantity of registers: 126
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 3, HasAddr: true, Count: 126, Malformed: BadQuantity},
	},
	{
		name: "FIFO count over 31",
		dir:  Response,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x18,       // function code
			0x00, 0x02, // byte count
			0x00, 0x20, // FIFO count: 32
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 24, Count: 32,
			Malformed: ByteCountMismatch, Outcome: OutcomeOrphan},
	},
	{
		name: "bad coil value",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x05,       // function code
			0x00, 0xAC, // output address
			0x12, 0x34, // output value: neither on nor off
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 5, HasAddr: true, Addr: 0xAC, Count: 1,
			Values: []uint16{0x1234}, Malformed: BadCoilValue},
	},
	{
		name: "unknown sub-function",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x13, // sub-function 19: reserved
			0x00, 0x00, // data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 8, Sub: 19, Data: []byte{0, 0}, Values: []uint16{0},
			Malformed: UnknownSubFunction},
	},
	{
		name: "unknown MEI",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x2B, // function code
			0x0F, // MEI type 15: reserved
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 43, MEI: 15, Malformed: UnknownMEI},
	},
	{
		name: "bad exception code",
		dir:  Response,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x83, // function code with the exception bit
			0x07, // exception code 7: undefined
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 3, Exception: 7, Malformed: BadExceptionCode,
			Outcome: OutcomeOrphan},
	},
	{
		name: "bad reference type",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0A, // length
			0x11,       // unit id
			0x14,       // function code
			0x07,       // byte count
			0x05,       // reference type: must be 6
			0x00, 0x04, // file number
			0x00, 0x01, // record number
			0x00, 0x02, // record length
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 20,
			Records: []FileRecord{{RefType: 5, File: 4, Record: 1, Length: 2}}, Malformed: BadReferenceType},
	},
	{
		name: "bad read device id code",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x05, // length
			0x11, // unit id
			0x2B, // function code
			0x0E, // MEI type: read device identification
			0x05, // read device id code: only 1–4 exist
			0x00, // object id
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 5, Malformed: BadFieldValue},
	},
	{
		name: "clear counters with data",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x06, // length
			0x11,       // unit id
			0x08,       // function code
			0x00, 0x0A, // sub-function: clear counters and diagnostic register
			0x00, 0x01, // data: must be 0
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 8, Sub: 10, Data: []byte{0, 1}, Values: []uint16{1},
			Malformed: BadFieldValue},
	},
	{
		name: "device identification object count disagrees",
		dir:  Response,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x0C, // length
			0x11,     // unit id
			0x2B,     // function code
			0x0E,     // MEI type
			0x01,     // read device id code
			0x01,     // conformity level
			0x00,     // more follows
			0x00,     // next object id
			0x02,     // number of objects: 2, but only one follows
			0x00,     // object id
			0x02,     // object length
			'A', 'B', // object value
		},
		want: Message{Dir: Response, TID: 1, Unit: 0x11, FC: 43, MEI: 14, DeviceIDCode: 1, Conformity: 1,
			NumObjects: 2, Objects: []DeviceObject{{ID: 0, Value: []byte("AB")}},
			Malformed: ByteCountMismatch, Outcome: OutcomeOrphan},
	},
	{
		name: "exception bit in a request",
		dir:  Request,
		in: []byte{
			0x00, 0x01, // transaction id
			0x00, 0x00, // protocol id
			0x00, 0x03, // length
			0x11, // unit id
			0x83, // function code 131
			0x02, // data
		},
		want: Message{Dir: Request, TID: 1, Unit: 0x11, FC: 0x83, Malformed: UnknownFunction},
	},
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			var c Conn
			if tc.req != nil {
				var discard recorder
				if n := d.Feed(&c, Request, tc.req, at(1, 0), &discard); n != len(tc.req) {
					t.Fatalf("request: consumed %d of %d bytes", n, len(tc.req))
				}
			}
			var r recorder
			if n := d.Feed(&c, tc.dir, tc.in, at(2, 0), &r); n != len(tc.in)-tc.keep {
				t.Fatalf("consumed %d of %d bytes, want %d", n, len(tc.in), len(tc.in)-tc.keep)
			}
			if len(r.msgs) != 1 {
				t.Fatalf("got %d messages, want 1: %+v", len(r.msgs), r.msgs)
			}
			diffMessage(t, "message", strip(r.msgs[0]), tc.want)
			if tc.want.Malformed != 0 && r.msgs[0].Malformed.String() == "invalid" {
				t.Errorf("reason %d has no name", r.msgs[0].Malformed)
			}
		})
	}
}

func TestDecodeFunctions(t *testing.T) { runDecodeCases(t, functionCases) }

func TestDecodeMalformed(t *testing.T) { runDecodeCases(t, malformedCases) }

// Every function code the specification makes public has a request and a
// response case above.
func TestDecodeCoversPublicFunctions(t *testing.T) {
	seen := map[Direction]map[uint8]bool{Request: {}, Response: {}}
	for _, tc := range functionCases {
		fc := tc.in[headerLen] &^ ExceptionBit
		seen[tc.dir][fc] = true
	}
	for fc := 0; fc < 128; fc++ {
		if Class(uint8(fc)) != ClassPublic {
			continue
		}
		for _, dir := range []Direction{Request, Response} {
			if !seen[dir][uint8(fc)] {
				t.Errorf("no %v case for function %d (%s)", dir, fc, FunctionName(uint8(fc)))
			}
		}
	}
}

func TestNames(t *testing.T) {
	fcs := []struct {
		fc    uint8
		name  string
		class FunctionClass
	}{
		{1, "read_coils", ClassPublic},
		{2, "read_discrete_inputs", ClassPublic},
		{3, "read_holding_registers", ClassPublic},
		{4, "read_input_registers", ClassPublic},
		{5, "write_single_coil", ClassPublic},
		{6, "write_single_register", ClassPublic},
		{7, "read_exception_status", ClassPublic},
		{8, "diagnostics", ClassPublic},
		{11, "get_comm_event_counter", ClassPublic},
		{12, "get_comm_event_log", ClassPublic},
		{15, "write_multiple_coils", ClassPublic},
		{16, "write_multiple_registers", ClassPublic},
		{17, "report_server_id", ClassPublic},
		{20, "read_file_record", ClassPublic},
		{21, "write_file_record", ClassPublic},
		{22, "mask_write_register", ClassPublic},
		{23, "read_write_multiple_registers", ClassPublic},
		{24, "read_fifo_queue", ClassPublic},
		{43, "encapsulated_interface_transport", ClassPublic},
		{65, "user_defined", ClassUserDefined},
		{72, "user_defined", ClassUserDefined},
		{100, "user_defined", ClassUserDefined},
		{110, "user_defined", ClassUserDefined},
		{9, "reserved", ClassReserved},
		{10, "reserved", ClassReserved},
		{13, "reserved", ClassReserved},
		{14, "reserved", ClassReserved},
		{41, "reserved", ClassReserved},
		{42, "reserved", ClassReserved},
		{90, "umas", ClassReserved},
		{91, "reserved", ClassReserved},
		{125, "reserved", ClassReserved},
		{127, "reserved", ClassReserved},
		{0, "unknown", ClassUnknown},
		{18, "unknown", ClassUnknown},
		{73, "unknown", ClassUnknown},
		{111, "unknown", ClassUnknown},
		{0x83, "unknown", ClassUnknown},
	}
	for _, tc := range fcs {
		if got := FunctionName(tc.fc); got != tc.name {
			t.Errorf("FunctionName(%d) = %q, want %q", tc.fc, got, tc.name)
		}
		if got := Class(tc.fc); got != tc.class {
			t.Errorf("Class(%d) = %v, want %v", tc.fc, got, tc.class)
		}
	}
	for code, name := range map[uint8]string{
		1: "illegal_function", 2: "illegal_data_address", 3: "illegal_data_value",
		4: "server_device_failure", 5: "acknowledge", 6: "server_device_busy",
		8: "memory_parity_error", 10: "gateway_path_unavailable",
		11: "gateway_target_device_failed_to_respond", 7: "unknown", 0: "unknown",
	} {
		if got := ExceptionName(code); got != name {
			t.Errorf("ExceptionName(%d) = %q, want %q", code, got, name)
		}
	}
	for sub, name := range map[uint16]string{
		0: "return_query_data", 1: "restart_communications_option", 2: "return_diagnostic_register",
		3: "change_ascii_input_delimiter", 4: "force_listen_only_mode",
		10: "clear_counters_and_diagnostic_register", 11: "return_bus_message_count",
		12: "return_bus_communication_error_count", 13: "return_bus_exception_error_count",
		14: "return_server_message_count", 15: "return_server_no_response_count",
		16: "return_server_nak_count", 17: "return_server_busy_count",
		18: "return_bus_character_overrun_count", 20: "clear_overrun_counter_and_flag",
		5: "unknown", 19: "unknown", 21: "unknown", 0xFFFF: "unknown",
	} {
		if got := SubFunctionName(sub); got != name {
			t.Errorf("SubFunctionName(%d) = %q, want %q", sub, got, name)
		}
		if known := name != "unknown"; knownSub(sub) != known {
			t.Errorf("knownSub(%d) = %v", sub, !known)
		}
	}
	for id, name := range map[uint8]string{
		0: "VendorName", 1: "ProductCode", 2: "MajorMinorRevision", 3: "VendorUrl",
		4: "ProductName", 5: "ModelName", 6: "UserApplicationName", 7: "reserved", 0x80: "private",
	} {
		if got := ObjectName(id); got != name {
			t.Errorf("ObjectName(%d) = %q, want %q", id, got, name)
		}
	}
	reasons := map[Reason]string{
		BadProtocolID: "bad_protocol_id", LengthTooShort: "length_too_short",
		LengthTooLong: "length_too_long", LengthMismatch: "length_mismatch",
		ReservedFunction: "reserved_function", UnknownFunction: "unknown_function",
		ByteCountMismatch: "byte_count_mismatch", BadQuantity: "bad_quantity",
		BadCoilValue: "bad_coil_value", UnknownSubFunction: "unknown_sub_function",
		UnknownMEI: "unknown_mei", BadExceptionCode: "bad_exception_code",
		Truncated: "truncated", NotModbus: "not_modbus",
		BadReferenceType: "bad_reference_type", BadFieldValue: "bad_field_value",
		BadCRC: "bad_crc",
	}
	for r, name := range reasons {
		if got := r.String(); got != name {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, name)
		}
	}
	if got := Reason(len(reasons) + 1).String(); got != "invalid" {
		t.Errorf("reason past the last = %q, want invalid", got)
	}
}

// TestCoilsLikeBits: coils unpacks every count of every octet string as
// reading the bits one by one does.
func TestCoilsLikeBits(t *testing.T) {
	d := NewDecoder(Config{})
	data := []byte{0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C}
	for count := 0; count <= 8*len(data)+3; count++ {
		for lo := 0; lo <= len(data); lo++ {
			in := data[lo:]
			got := d.coils(in, count)
			want := min(count, 8*len(in))
			if len(got) != want {
				t.Fatalf("%x, count %d: %d coils, want %d", in, count, len(got), want)
			}
			for i, c := range got {
				if w := uint16(in[i/8]>>(i%8)) & 1; c != w {
					t.Fatalf("%x, count %d: coil %d is %d, want %d", in, count, i, c, w)
				}
			}
		}
	}
}

// TestRegisters: registers unpacks every length, odd ones and ones past
// the decoder's room included, as one big-endian word at a time would.
func TestRegisters(t *testing.T) {
	d := NewDecoder(Config{})
	data := make([]byte, 2*maxValues+5)
	for i := range data {
		data[i] = byte(i*37 + i>>3)
	}
	for n := 0; n <= len(data); n++ {
		got := d.registers(data[:n])
		want := min(n/2, maxValues)
		if len(got) != want {
			t.Fatalf("%d octets: %d registers, want %d", n, len(got), want)
		}
		for i, v := range got {
			if w := uint16(data[2*i])<<8 | uint16(data[2*i+1]); v != w {
				t.Fatalf("%d octets: register %d is %#04x, want %#04x", n, i, v, w)
			}
		}
	}
}
