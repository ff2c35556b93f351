package modbus

import "unsafe"

func connSize() uintptr { return unsafe.Sizeof(Conn{}) }
