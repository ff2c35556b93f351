package dnp3

// Application function codes (IEEE 1815-2012 §4.2.2.5, Table 4-2).
const (
	FuncConfirm               uint8 = 0
	FuncRead                  uint8 = 1
	FuncWrite                 uint8 = 2
	FuncSelect                uint8 = 3
	FuncOperate               uint8 = 4
	FuncDirectOperate         uint8 = 5
	FuncDirectOperateNR       uint8 = 6
	FuncImmedFreeze           uint8 = 7
	FuncImmedFreezeNR         uint8 = 8
	FuncFreezeClear           uint8 = 9
	FuncFreezeClearNR         uint8 = 10
	FuncFreezeAtTime          uint8 = 11
	FuncFreezeAtTimeNR        uint8 = 12
	FuncColdRestart           uint8 = 13
	FuncWarmRestart           uint8 = 14
	FuncInitializeData        uint8 = 15
	FuncInitializeApplication uint8 = 16
	FuncStartApplication      uint8 = 17
	FuncStopApplication       uint8 = 18
	FuncSaveConfiguration     uint8 = 19
	FuncEnableUnsolicited     uint8 = 20
	FuncDisableUnsolicited    uint8 = 21
	FuncAssignClass           uint8 = 22
	FuncDelayMeasure          uint8 = 23
	FuncRecordCurrentTime     uint8 = 24
	FuncOpenFile              uint8 = 25
	FuncCloseFile             uint8 = 26
	FuncDeleteFile            uint8 = 27
	FuncGetFileInfo           uint8 = 28
	FuncAuthenticateFile      uint8 = 29
	FuncAbortFile             uint8 = 30
	FuncActivateConfig        uint8 = 31
	FuncAuthenticateRequest   uint8 = 32
	FuncAuthenticateError     uint8 = 33 // authentication request, no acknowledgement
	FuncResponse              uint8 = 129
	FuncUnsolicitedResponse   uint8 = 130
	FuncAuthenticateResponse  uint8 = 131
)

var funcNames = [...]string{
	FuncConfirm:               "confirm",
	FuncRead:                  "read",
	FuncWrite:                 "write",
	FuncSelect:                "select",
	FuncOperate:               "operate",
	FuncDirectOperate:         "direct_operate",
	FuncDirectOperateNR:       "direct_operate_nr",
	FuncImmedFreeze:           "immed_freeze",
	FuncImmedFreezeNR:         "immed_freeze_nr",
	FuncFreezeClear:           "freeze_clear",
	FuncFreezeClearNR:         "freeze_clear_nr",
	FuncFreezeAtTime:          "freeze_at_time",
	FuncFreezeAtTimeNR:        "freeze_at_time_nr",
	FuncColdRestart:           "cold_restart",
	FuncWarmRestart:           "warm_restart",
	FuncInitializeData:        "initialize_data",
	FuncInitializeApplication: "initialize_application",
	FuncStartApplication:      "start_application",
	FuncStopApplication:       "stop_application",
	FuncSaveConfiguration:     "save_configuration",
	FuncEnableUnsolicited:     "enable_unsolicited",
	FuncDisableUnsolicited:    "disable_unsolicited",
	FuncAssignClass:           "assign_class",
	FuncDelayMeasure:          "delay_measure",
	FuncRecordCurrentTime:     "record_current_time",
	FuncOpenFile:              "open_file",
	FuncCloseFile:             "close_file",
	FuncDeleteFile:            "delete_file",
	FuncGetFileInfo:           "get_file_info",
	FuncAuthenticateFile:      "authenticate_file",
	FuncAbortFile:             "abort_file",
	FuncActivateConfig:        "activate_config",
	FuncAuthenticateRequest:   "authenticate_request",
	FuncAuthenticateError:     "authenticate_error",
}

// knownFunction reports whether fc is an assigned application function code.
func knownFunction(fc uint8) bool {
	return int(fc) < len(funcNames) || (fc >= FuncResponse && fc <= FuncAuthenticateResponse)
}

// FunctionName is the snake_case name of an application function code:
// "read", "direct_operate", "unsolicited_response"; "unknown" when the code
// is not assigned.
func FunctionName(fc uint8) string {
	if int(fc) < len(funcNames) {
		return funcNames[fc]
	}
	switch fc {
	case FuncResponse:
		return "response"
	case FuncUnsolicitedResponse:
		return "unsolicited_response"
	case FuncAuthenticateResponse:
		return "authenticate_response"
	}
	return "unknown"
}

// Link layer function codes (IEEE 1815-2012 §9.2.4.1.3).
var (
	primaryLinkNames = [16]string{
		0: "reset_link_states",
		1: "reset_user_process", // obsolete
		2: "test_link_states",
		3: "confirmed_user_data",
		4: "unconfirmed_user_data",
		9: "request_link_status",
	}
	secondaryLinkNames = [16]string{
		0:  "ack",
		1:  "nack",
		11: "link_status",
		14: "not_functioning", // obsolete
		15: "not_supported",
	}
)

// LinkFunctionName names a link function code for primary (prm) or
// secondary frames: "unconfirmed_user_data", "ack", "link_status";
// "unknown" when the code is reserved for that kind of frame.
func LinkFunctionName(prm bool, fc uint8) string {
	if fc >= 16 {
		return "unknown"
	}
	name := secondaryLinkNames[fc]
	if prm {
		name = primaryLinkNames[fc]
	}
	if name == "" {
		return "unknown"
	}
	return name
}

var iinNames = [16]string{
	"all_stations",
	"class_1_events",
	"class_2_events",
	"class_3_events",
	"need_time",
	"local_control",
	"device_trouble",
	"device_restart",
	"no_func_code_support",
	"object_unknown",
	"parameter_error",
	"event_buffer_overflow",
	"already_executing",
	"config_corrupt",
	"reserved_2",
	"reserved_1",
}

// IIN bits as Message.IIN holds them (IEEE 1815-2012 §4.2.2.7.2): the first
// octet in bits 0–7, the second in bits 8–15.
const (
	IINAllStations         uint16 = 1 << 0
	IINClass1Events        uint16 = 1 << 1
	IINClass2Events        uint16 = 1 << 2
	IINClass3Events        uint16 = 1 << 3
	IINNeedTime            uint16 = 1 << 4
	IINLocalControl        uint16 = 1 << 5
	IINDeviceTrouble       uint16 = 1 << 6
	IINDeviceRestart       uint16 = 1 << 7
	IINNoFuncCodeSupport   uint16 = 1 << 8
	IINObjectUnknown       uint16 = 1 << 9
	IINParameterError      uint16 = 1 << 10
	IINEventBufferOverflow uint16 = 1 << 11
	IINAlreadyExecuting    uint16 = 1 << 12
	IINConfigCorrupt       uint16 = 1 << 13
	IINReserved2           uint16 = 1 << 14
	IINReserved1           uint16 = 1 << 15
)

// IINName names bit (0–15) of the IIN field as Message.IIN holds it (first
// octet in bits 0–7): e.g. bit 7 "device_restart", bit 13 "config_corrupt";
// "" for a bit above 15.
func IINName(bit uint) string {
	if bit >= uint(len(iinNames)) {
		return ""
	}
	return iinNames[bit]
}

// GroupName names an object group, e.g. 12 "control_relay_output_block",
// 120 "authentication"; "" when unassigned.
func GroupName(group uint8) string {
	switch group {
	case 0:
		return "device_attributes"
	case 1:
		return "binary_input"
	case 2:
		return "binary_input_event"
	case 3:
		return "double_bit_binary_input"
	case 4:
		return "double_bit_binary_input_event"
	case 10:
		return "binary_output"
	case 11:
		return "binary_output_event"
	case 12:
		return "control_relay_output_block"
	case 13:
		return "binary_output_command_event"
	case 20:
		return "counter"
	case 21:
		return "frozen_counter"
	case 22:
		return "counter_event"
	case 23:
		return "frozen_counter_event"
	case 30:
		return "analog_input"
	case 31:
		return "frozen_analog_input"
	case 32:
		return "analog_input_event"
	case 33:
		return "frozen_analog_input_event"
	case 34:
		return "analog_input_deadband"
	case 40:
		return "analog_output_status"
	case 41:
		return "analog_output"
	case 42:
		return "analog_output_event"
	case 43:
		return "analog_output_command_event"
	case 50:
		return "time_and_date"
	case 51:
		return "time_and_date_cto"
	case 52:
		return "time_delay"
	case 60:
		return "class_data"
	case 70:
		return "file_control"
	case 80:
		return "internal_indications"
	case 81:
		return "device_storage"
	case 82:
		return "device_profile"
	case 83:
		return "data_set_registration"
	case 85:
		return "data_set_prototype"
	case 86:
		return "data_set_descriptor"
	case 87:
		return "data_set"
	case 88:
		return "data_set_event"
	case 90:
		return "application_identifier"
	case 91:
		return "status_of_requested_operation"
	case 100:
		return "floating_point"
	case 101:
		return "bcd_integer"
	case 102:
		return "unsigned_integer"
	case 110:
		return "octet_string"
	case 111:
		return "octet_string_event"
	case 112:
		return "virtual_terminal_output"
	case 113:
		return "virtual_terminal_event"
	case 120:
		return "authentication"
	case 121:
		return "security_statistic"
	case 122:
		return "security_statistic_event"
	}
	return ""
}

func (r Reason) String() string {
	switch r {
	case 0:
		return "ok"
	case BadHeaderCRC:
		return "bad_header_crc"
	case BadBlockCRC:
		return "bad_block_crc"
	case LinkTooShort:
		return "link_too_short"
	case NotDNP3:
		return "not_dnp3"
	case BadLinkFunction:
		return "bad_link_function"
	case MissingFIR:
		return "missing_fir"
	case SequenceOutOfOrder:
		return "sequence_out_of_order"
	case FragmentTooLong:
		return "fragment_too_long"
	case FragmentTruncated:
		return "fragment_truncated"
	case AppTooShort:
		return "app_too_short"
	case UnknownFunction:
		return "unknown_function"
	case BadQualifier:
		return "bad_qualifier"
	case UnknownObject:
		return "unknown_object"
	case ObjectTooShort:
		return "object_too_short"
	case TooManyObjects:
		return "too_many_objects"
	case BadRange:
		return "bad_range"
	case ObjectsNotAllowed:
		return "objects_not_allowed"
	case SelectMismatch:
		return "select_mismatch"
	case OperateWithoutSelect:
		return "operate_without_select"
	case OperateLate:
		return "operate_late"
	case RequestFlood:
		return "request_flood"
	}
	return "invalid"
}

// Error is the error the Parser returns for an anomaly: compare it with
// Error(Reason) or read it with errors.As.
type Error Reason

func (e Error) Error() string { return "dnp3: " + Reason(e).String() }

// Reason is the anomaly of e.
func (e Error) Reason() Reason { return Reason(e) }
