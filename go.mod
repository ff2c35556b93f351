module github.com/tapwatch/tapwatch

go 1.26.8

require (
	github.com/goburrow/modbus v0.1.0
	github.com/goccy/go-yaml v1.19.2
	github.com/gopacket/gopacket v1.7.7
	github.com/simonvetter/modbus v1.6.4
)

require (
	github.com/goburrow/serial v0.1.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
