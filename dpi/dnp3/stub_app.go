package dnp3

// Stub for the application-layer implementer: replace with real files
// (app.go, objects.go, points.go, names.go, ...) and delete this file.

type appScratch struct{}

// decodeApp fills m's application fields (AppControl, FIR, FIN, CON, UNS,
// Seq, FC, Dir, IIN, Objects, Points, MorePoints, Malformed, Anomalies)
// from a complete application fragment starting at the application control
// octet.
func (d *Decoder) decodeApp(m *Message, fragment []byte) {}

func (r Reason) String() string { return "" }

// FunctionName is the snake_case name of an application function code.
func FunctionName(fc uint8) string { return "" }

// LinkFunctionName names a link function code for primary (prm) or
// secondary frames.
func LinkFunctionName(prm bool, fc uint8) string { return "" }

// IINName names bit (0–15) of the IIN field as Message.IIN holds it (first
// octet in bits 0–7): e.g. bit 7 "device_restart", bit 13 "config_corrupt".
func IINName(bit uint) string { return "" }

// GroupName names an object group, e.g. 12 "control_relay_output_block",
// 120 "authentication"; "" when unassigned.
func GroupName(group uint8) string { return "" }
