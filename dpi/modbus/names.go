package modbus

// Function codes of the public Modbus functions (specification §6).
const (
	FuncReadCoils                  uint8 = 1
	FuncReadDiscreteInputs         uint8 = 2
	FuncReadHoldingRegisters       uint8 = 3
	FuncReadInputRegisters         uint8 = 4
	FuncWriteSingleCoil            uint8 = 5
	FuncWriteSingleRegister        uint8 = 6
	FuncReadExceptionStatus        uint8 = 7
	FuncDiagnostics                uint8 = 8
	FuncGetCommEventCounter        uint8 = 11
	FuncGetCommEventLog            uint8 = 12
	FuncWriteMultipleCoils         uint8 = 15
	FuncWriteMultipleRegisters     uint8 = 16
	FuncReportServerID             uint8 = 17
	FuncReadFileRecord             uint8 = 20
	FuncWriteFileRecord            uint8 = 21
	FuncMaskWriteRegister          uint8 = 22
	FuncReadWriteMultipleRegisters uint8 = 23
	FuncReadFIFOQueue              uint8 = 24
	FuncEncapsulatedInterface      uint8 = 43

	// ExceptionBit is set in the function code of an exception response.
	ExceptionBit uint8 = 0x80
)

// FunctionName returns the snake_case name of a function code (without the
// exception bit) for logs: "read_coils", "user_defined", "reserved",
// "unknown", and so on.
func FunctionName(fc uint8) string {
	switch fc {
	case FuncReadCoils:
		return "read_coils"
	case FuncReadDiscreteInputs:
		return "read_discrete_inputs"
	case FuncReadHoldingRegisters:
		return "read_holding_registers"
	case FuncReadInputRegisters:
		return "read_input_registers"
	case FuncWriteSingleCoil:
		return "write_single_coil"
	case FuncWriteSingleRegister:
		return "write_single_register"
	case FuncReadExceptionStatus:
		return "read_exception_status"
	case FuncDiagnostics:
		return "diagnostics"
	case FuncGetCommEventCounter:
		return "get_comm_event_counter"
	case FuncGetCommEventLog:
		return "get_comm_event_log"
	case FuncWriteMultipleCoils:
		return "write_multiple_coils"
	case FuncWriteMultipleRegisters:
		return "write_multiple_registers"
	case FuncReportServerID:
		return "report_server_id"
	case FuncReadFileRecord:
		return "read_file_record"
	case FuncWriteFileRecord:
		return "write_file_record"
	case FuncMaskWriteRegister:
		return "mask_write_register"
	case FuncReadWriteMultipleRegisters:
		return "read_write_multiple_registers"
	case FuncReadFIFOQueue:
		return "read_fifo_queue"
	case FuncEncapsulatedInterface:
		return "encapsulated_interface_transport"
	case 90:
		// Reserved by the specification, used by Schneider Electric's UMAS.
		return "umas"
	}
	switch Class(fc) {
	case ClassUserDefined:
		return "user_defined"
	case ClassReserved:
		return "reserved"
	}
	return "unknown"
}

// FunctionClass says what the specification (Annex A and §5) makes of a
// function code. The zero value is invalid.
type FunctionClass uint8

const (
	ClassPublic      FunctionClass = 1 + iota // defined by the specification
	ClassUserDefined                          // 65–72 and 100–110
	ClassReserved                             // Annex A: kept for legacy products
	ClassUnknown                              // anything else, including 0 and 128–255
)

// Class classifies a function code given without the exception bit.
func Class(fc uint8) FunctionClass {
	switch {
	case fc >= 1 && fc <= 8, fc == 11, fc == 12, fc >= 15 && fc <= 17,
		fc >= 20 && fc <= 24, fc == 43:
		return ClassPublic
	case fc >= 65 && fc <= 72, fc >= 100 && fc <= 110:
		return ClassUserDefined
	case fc == 9, fc == 10, fc == 13, fc == 14, fc == 41, fc == 42,
		fc == 90, fc == 91, fc >= 125 && fc <= 127:
		return ClassReserved
	}
	return ClassUnknown
}

func (c FunctionClass) String() string {
	switch c {
	case ClassPublic:
		return "public"
	case ClassUserDefined:
		return "user_defined"
	case ClassReserved:
		return "reserved"
	case ClassUnknown:
		return "unknown"
	}
	return "invalid"
}

// Exception codes (specification §7).
const (
	ExIllegalFunction                    uint8 = 1
	ExIllegalDataAddress                 uint8 = 2
	ExIllegalDataValue                   uint8 = 3
	ExServerDeviceFailure                uint8 = 4
	ExAcknowledge                        uint8 = 5
	ExServerDeviceBusy                   uint8 = 6
	ExMemoryParityError                  uint8 = 8
	ExGatewayPathUnavailable             uint8 = 10
	ExGatewayTargetDeviceFailedToRespond uint8 = 11
)

// ExceptionName returns the snake_case name of an exception code, or
// "unknown".
func ExceptionName(code uint8) string {
	switch code {
	case ExIllegalFunction:
		return "illegal_function"
	case ExIllegalDataAddress:
		return "illegal_data_address"
	case ExIllegalDataValue:
		return "illegal_data_value"
	case ExServerDeviceFailure:
		return "server_device_failure"
	case ExAcknowledge:
		return "acknowledge"
	case ExServerDeviceBusy:
		return "server_device_busy"
	case ExMemoryParityError:
		return "memory_parity_error"
	case ExGatewayPathUnavailable:
		return "gateway_path_unavailable"
	case ExGatewayTargetDeviceFailedToRespond:
		return "gateway_target_device_failed_to_respond"
	}
	return "unknown"
}

// Diagnostics (FC 8) sub-function codes (specification §6.8.1).
const (
	SubReturnQueryData                    uint16 = 0
	SubRestartCommunicationsOption        uint16 = 1
	SubReturnDiagnosticRegister           uint16 = 2
	SubChangeASCIIInputDelimiter          uint16 = 3
	SubForceListenOnlyMode                uint16 = 4
	SubClearCountersAndDiagnosticRegister uint16 = 10
	SubReturnBusMessageCount              uint16 = 11
	SubReturnBusCommunicationErrorCount   uint16 = 12
	SubReturnBusExceptionErrorCount       uint16 = 13
	SubReturnServerMessageCount           uint16 = 14
	SubReturnServerNoResponseCount        uint16 = 15
	SubReturnServerNAKCount               uint16 = 16
	SubReturnServerBusyCount              uint16 = 17
	SubReturnBusCharacterOverrunCount     uint16 = 18
	SubClearOverrunCounterAndFlag         uint16 = 20
)

// SubFunctionName returns the snake_case name of a diagnostics sub-function,
// or "unknown".
func SubFunctionName(sub uint16) string {
	switch sub {
	case SubReturnQueryData:
		return "return_query_data"
	case SubRestartCommunicationsOption:
		return "restart_communications_option"
	case SubReturnDiagnosticRegister:
		return "return_diagnostic_register"
	case SubChangeASCIIInputDelimiter:
		return "change_ascii_input_delimiter"
	case SubForceListenOnlyMode:
		return "force_listen_only_mode"
	case SubClearCountersAndDiagnosticRegister:
		return "clear_counters_and_diagnostic_register"
	case SubReturnBusMessageCount:
		return "return_bus_message_count"
	case SubReturnBusCommunicationErrorCount:
		return "return_bus_communication_error_count"
	case SubReturnBusExceptionErrorCount:
		return "return_bus_exception_error_count"
	case SubReturnServerMessageCount:
		return "return_server_message_count"
	case SubReturnServerNoResponseCount:
		return "return_server_no_response_count"
	case SubReturnServerNAKCount:
		return "return_server_nak_count"
	case SubReturnServerBusyCount:
		return "return_server_busy_count"
	case SubReturnBusCharacterOverrunCount:
		return "return_bus_character_overrun_count"
	case SubClearOverrunCounterAndFlag:
		return "clear_overrun_counter_and_flag"
	}
	return "unknown"
}

func knownSub(sub uint16) bool {
	return sub <= SubForceListenOnlyMode ||
		sub >= SubClearCountersAndDiagnosticRegister && sub <= SubReturnBusCharacterOverrunCount ||
		sub == SubClearOverrunCounterAndFlag
}

// MEI types of FC 43 (specification §6.19–6.21).
const (
	MEICANopenGeneralReference uint8 = 13
	MEIReadDeviceID            uint8 = 14
)

// Read device identification object ids (specification §6.21).
const (
	ObjectVendorName          uint8 = 0
	ObjectProductCode         uint8 = 1
	ObjectMajorMinorRevision  uint8 = 2
	ObjectVendorURL           uint8 = 3
	ObjectProductName         uint8 = 4
	ObjectModelName           uint8 = 5
	ObjectUserApplicationName uint8 = 6
)

// ObjectName returns the specification's name of a device identification
// object: "VendorName", "ProductCode", and so on; "reserved" for 7–127 and
// "private" for the product-dependent 128–255.
func ObjectName(id uint8) string {
	switch id {
	case ObjectVendorName:
		return "VendorName"
	case ObjectProductCode:
		return "ProductCode"
	case ObjectMajorMinorRevision:
		return "MajorMinorRevision"
	case ObjectVendorURL:
		return "VendorUrl"
	case ObjectProductName:
		return "ProductName"
	case ObjectModelName:
		return "ModelName"
	case ObjectUserApplicationName:
		return "UserApplicationName"
	}
	if id < 0x80 {
		return "reserved"
	}
	return "private"
}

// Reasons a message is malformed.
const (
	BadProtocolID      Reason = 1 + iota // MBAP protocol identifier is not 0
	LengthTooShort                       // MBAP length below 2
	LengthTooLong                        // MBAP length above 254
	LengthMismatch                       // MBAP length disagrees with the PDU
	ReservedFunction                     // function code reserved by Annex A
	UnknownFunction                      // function code neither public, user-defined nor reserved
	ByteCountMismatch                    // a byte count disagrees with a quantity or with the data
	BadQuantity                          // a quantity outside the specification's limits
	BadCoilValue                         // write single coil value neither 0xFF00 nor 0x0000
	UnknownSubFunction                   // FC 8 sub-function not defined
	UnknownMEI                           // FC 43 MEI type neither 13 nor 14
	BadExceptionCode                     // exception code not defined
	Truncated                            // the ADU was cut short by lost bytes or the end of a datagram
	NotModbus                            // bytes skipped while looking for an MBAP header or an RTU frame
	BadReferenceType                     // FC 20/21 reference type not 6
	BadFieldValue                        // a field holds a value the specification rules out
	BadCRC                               // an RTU frame whose CRC does not match
)

func (r Reason) String() string {
	switch r {
	case 0:
		return "ok"
	case BadProtocolID:
		return "bad_protocol_id"
	case LengthTooShort:
		return "length_too_short"
	case LengthTooLong:
		return "length_too_long"
	case LengthMismatch:
		return "length_mismatch"
	case ReservedFunction:
		return "reserved_function"
	case UnknownFunction:
		return "unknown_function"
	case ByteCountMismatch:
		return "byte_count_mismatch"
	case BadQuantity:
		return "bad_quantity"
	case BadCoilValue:
		return "bad_coil_value"
	case UnknownSubFunction:
		return "unknown_sub_function"
	case UnknownMEI:
		return "unknown_mei"
	case BadExceptionCode:
		return "bad_exception_code"
	case Truncated:
		return "truncated"
	case NotModbus:
		return "not_modbus"
	case BadReferenceType:
		return "bad_reference_type"
	case BadFieldValue:
		return "bad_field_value"
	case BadCRC:
		return "bad_crc"
	}
	return "invalid"
}

func (d Direction) String() string {
	switch d {
	case Request:
		return "request"
	case Response:
		return "response"
	}
	return "invalid"
}

func (o Outcome) String() string {
	switch o {
	case OutcomeNone:
		return "none"
	case OutcomeOK:
		return "ok"
	case OutcomeException:
		return "exception"
	case OutcomeOrphan:
		return "orphan"
	case OutcomeUnanswered:
		return "unanswered"
	}
	return "invalid"
}
