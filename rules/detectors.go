package rules

import (
	"time"

	"github.com/tapwatch/tapwatch/dpi/dnp3"
	"github.com/tapwatch/tapwatch/rules/policy"
)

// Alert categories of the built-in detectors.
const (
	CategoryProtocolAnomaly   = "protocol-anomaly"
	CategoryDiagnostics       = "diagnostics"
	CategoryReconnaissance    = "reconnaissance"
	CategoryDangerousFunction = "dangerous-function"
	CategoryBroadcast         = "broadcast"
	CategoryFlood             = "flood"
	CategoryNetwork           = "network"
	CategoryInventory         = "inventory"
	CategoryIntegrity         = "integrity"
)

// Detector is a built-in detector: what a policy knows of it (its id, its
// defaults, its ATT&CK for ICS techniques), and how the engine runs it.
type Detector struct {
	policy.DetectorSpec

	// The detectors that run on decoded messages (builtin.go) have checks
	// and a title; the baseline-* ones are run by baseline.go. The alerts
	// one message raises come in the order of the checks' stages, then of
	// this table.
	checks []check
	// title is the title of an alert about op; d is the detector as the
	// policy set it, f what its check found.
	title func(op *Op, d *builtinDet, f finding) string
}

// IntegrityIDs returns the ids of the detectors of forged, replayed and
// modified messages: those of category integrity. (baseline-new-point,
// which also judges what outstations report, is of category baseline.)
func IntegrityIDs() []string {
	var ids []string
	for _, d := range Detectors {
		if d.Category == CategoryIntegrity {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// Detectors is the catalogue of built-in detectors, in the order they are
// documented and printed. The entries of the detectors on decoded
// messages stand at the index of their detKind; the baseline detectors
// follow.
var Detectors = []Detector{
	dMalformed: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "malformed",
			Name:        "Malformed protocol message",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0814"},
			Description: "A Modbus or DNP3 message that breaks its specification: bad DNP3 CRCs, an MBAP length that disagrees with the PDU, non-Modbus bytes on a Modbus port, reserved or unknown function codes, bad object headers. Reported once per flow and window, not once per packet.",
			Window:      time.Minute,
			Category:    CategoryProtocolAnomaly,
		},
		checks: []check{{stageMessage, modbusAnomalous, (*Engine).checkModbusMalformed, anyFC}, {stageMessage, dnp3Anomalous, (*Engine).checkDNP3Malformed, anyFC}},
		title:  titleMalformed,
	},
	dModbusDiag: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "modbus-diagnostics",
			Name:        "Modbus diagnostics abuse",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0814", "T0816", "T0872"},
			Description: "Modbus function 8 sub-functions that take a device off the bus or wipe its evidence: force listen-only mode (4), restart communications (1), clear counters and diagnostic register (10), clear overrun counter (20).",
			Category:    CategoryDiagnostics,
		},
		checks: []check{{stageFunction, modbusRequests, (*Engine).checkModbusDiag, fcIn(8)}},
		title:  titleModbusDiag,
	},
	dDeviceID: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "recon-device-id",
			Name:        "Modbus device identification read",
			Severity:    policy.SeverityLow,
			Attack:      []string{"T0888"},
			Description: "A read device identification request (function 43, MEI type 14) or a report server id request (function 17), which reveal vendor, product, firmware revision and run state.",
			Category:    CategoryReconnaissance,
		},
		checks: []check{{stageFunction, modbusRequests, (*Engine).checkDeviceID, fcIn(17, 43)}},
		title:  titleDeviceID,
	},
	dSweep: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "recon-sweep",
			Name:        "Function code or unit id sweep",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0846", "T0888"},
			Description: "One source tries more distinct Modbus function codes or unit ids, or DNP3 function codes or link addresses, on one device than rate.max within rate.per.",
			Rate:        &policy.Rate{Max: 12, Per: 10 * time.Second}, // masters poll with a handful of codes; sweeps try many
			Category:    CategoryReconnaissance,
		},
		checks: []check{{stageCount, modbusRequests, (*Engine).checkModbusSweep, anyFC}, {stageCount, dnp3Requests, (*Engine).checkDNP3Sweep, anyFC}},
		title:  titleSweep,
	},
	dExceptionStorm: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "exception-storm",
			Name:        "Exception storm",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0861", "T0888"},
			Description: "More than rate.max illegal function, illegal data address, acknowledge or server busy exceptions (DNP3: function code not supported, object unknown, parameter error) from one device to one master within rate.per: someone probing which functions and addresses exist, or a device swamped by requests.",
			Rate:        &policy.Rate{Max: 10, Per: 10 * time.Second},
			Category:    CategoryReconnaissance,
		},
		checks: []check{{stageFunction, modbusAnomalous, (*Engine).checkModbusExceptions, anyFC}, {stageFunction, dnp3Anomalous, (*Engine).checkDNP3Exceptions, anyFC}},
		title:  titleExceptionStorm,
	},
	dBusyDelay: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "modbus-busy-delay",
			Name:        "Modbus busy or acknowledge exceptions",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0814", "T0856"},
			Description: "More than rate.max server busy (6) or acknowledge (5) exceptions from one device to one master within rate.per: each tells the master to wait and ask again, so a burst of them, real or spoofed, keeps the master from its data (QuickDraw's busy and acknowledge exception delay).",
			Rate:        &policy.Rate{Max: 4, Per: 15 * time.Second},
			Category:    CategoryFlood,
		},
		checks: []check{{stageFunction, modbusAnomalous, (*Engine).checkBusyDelay, anyFC}},
		title:  titleBusyDelay,
	},
	dDNP3Restart: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-restart",
			Name:        "DNP3 outstation restart",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0816"},
			Description: "A DNP3 cold restart (13) or warm restart (14) request.",
			Category:    CategoryDangerousFunction,
		},
		checks: []check{{stageFunction, dnp3Requests, (*Engine).checkDNP3Restart, fcIn(dnp3.FuncColdRestart, dnp3.FuncWarmRestart)}},
		title:  titleDNP3Function,
	},
	dDNP3AppControl: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-application-control",
			Name:        "DNP3 application stopped, started or initialized",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0881", "T0858"},
			Description: "A DNP3 stop application (18), start application (17), initialize data (15) or initialize application (16) request.",
			Category:    CategoryDangerousFunction,
		},
		checks: []check{{stageFunction, dnp3Requests, (*Engine).checkDNP3AppControl, fcIn(dnp3.FuncInitializeData, dnp3.FuncInitializeApplication, dnp3.FuncStartApplication, dnp3.FuncStopApplication)}},
		title:  titleDNP3Function,
	},
	dDNP3DisableUnsol: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-disable-unsolicited",
			Name:        "DNP3 unsolicited reporting disabled",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0815", "T0804"},
			Description: "A DNP3 disable unsolicited (21) request: the outstation stops reporting events on its own, which blinds the master.",
			Category:    CategoryDangerousFunction,
		},
		checks: []check{{stageFunction, dnp3Requests, (*Engine).checkDNP3DisableUnsol, fcIn(dnp3.FuncDisableUnsolicited)}},
		title:  titleDNP3Function,
	},
	dDNP3File: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-file",
			Name:        "DNP3 file operation",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0843", "T0882"},
			Description: "A DNP3 file request: open (25), close (26), delete (27), get file info (28), authenticate (29) or abort (30); also group 70 objects in a write.",
			Category:    CategoryDangerousFunction,
		},
		checks: []check{{stageFunction, dnp3Requests, (*Engine).checkDNP3File, fcIn(dnp3.FuncWrite, dnp3.FuncOpenFile, dnp3.FuncCloseFile, dnp3.FuncDeleteFile, dnp3.FuncGetFileInfo, dnp3.FuncAuthenticateFile, dnp3.FuncAbortFile)}},
		title:  titleDNP3Function,
	},
	dDNP3OperateNoSelect: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-operate-without-select",
			Name:        "DNP3 operate without a matching select",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0855"},
			Description: "A DNP3 OPERATE (4) that no SELECT (3) came before, or whose objects and values differ from the SELECT, or that came after the select timeout.",
			Category:    CategoryDangerousFunction,
		},
		checks: []check{{stageFunction, dnp3Requests, (*Engine).checkDNP3OperateNoSelect, fcIn(dnp3.FuncOperate)}},
		title:  titleDNP3OperateNoSelect,
	},
	dDNP3UnsolStorm: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-unsolicited-storm",
			Name:        "DNP3 unsolicited response storm",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0814", "T0856"},
			Description: "More than rate.max unsolicited responses (130) from one outstation to one master within rate.per: a device flooding its master with events, or someone spoofing them to drown real ones.",
			Rate:        &policy.Rate{Max: 4, Per: 10 * time.Second}, // as QuickDraw's: 5 within 10 s
			Category:    CategoryFlood,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3UnsolStorm, anyFC}},
		title:  titleDNP3UnsolStorm,
	},
	dDNP3UnsolRepeat: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-unsolicited-repeat",
			Name:        "DNP3 unsolicited response repeated",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0856", "T0830"},
			Description: "A DNP3 unsolicited response with the application sequence number of the association's previous one, but other content, or (over TCP) the same content after the master confirmed the previous one. An outstation repeats an unsolicited response only when it was not confirmed, and then with the same objects; any other with that number is a forged report pushed between the real ones. A response with the restart indication (IIN1.7) passes, and so does a copy within a second of the confirm but at least half a second after the copy before it (a retry that crossed the confirm).",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3UnsolRepeat, fcIn(dnp3.FuncUnsolicitedResponse)},
			{stageFunction, dnp3Requests, (*Engine).checkDNP3UnsolConfirm, fcIn(dnp3.FuncConfirm)}},
		title: titleDNP3UnsolRepeat,
	},
	dConfirmUnmatched: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-confirm-unmatched",
			Name:        "DNP3 confirm of an unsolicited response never sent",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0855", "T0830"},
			Description: "A DNP3 master's confirm of an unsolicited response, or of a solicited response that asked for one (CON), whose sequence number is not that of the outstation's last such response, or one more confirm of it than the copies the outstation sent: a confirm forged to make the outstation drop its events, or a master confirming what someone else sent. A confirm waits a second for a response that comes late before it is judged. Judged only on the connection the last unsolicited response came on, with no capture gap in either direction since.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3UnsolRepeat, fcIn(dnp3.FuncUnsolicitedResponse)},
			{stageFunction, dnp3Answers, (*Engine).checkDNP3Solicited, fcIn(dnp3.FuncResponse)},
			{stageFunction, dnp3Requests, (*Engine).checkDNP3UnsolConfirm, fcIn(dnp3.FuncConfirm)}},
		title: titleConfirmUnmatched,
	},
	dDNP3Replay: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-replay",
			Name:        "DNP3 fragment replayed",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0856", "T0855", "T0830"},
			Description: "A DNP3 fragment that carries absolute time (time-stamped events, a time write, a common time of occurrence) byte-identical to one sent before from the same sender to the same receiver. The time makes such a fragment unique, so only a recording sends it again. A TCP retransmission never counts, nor an unsolicited response sent again because it was not confirmed. Fragments without time repeat in normal polling and are not judged.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Messages, (*Engine).checkDNP3Replay, anyFC}},
		title:  titleDNP3Replay,
	},
	dModbusTIDReuse: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "modbus-tid-reuse",
			Name:        "Modbus transaction id reused",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0855", "T0830"},
			Description: "A Modbus request that reuses the transaction id and unit of a request still waiting for its response, but asks for another function, address, quantity or sub-function, on a connection whose master numbers its transactions, an id among its last four but not its latest: a request injected into the connection, racing the master's. A repeat of the same request, more requests under the master's current id (some masters send several writes under one), a master that cycles through a few ids and comes back to one never answered, and a master that sends one transaction id always pass.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageMessage, modbusAnomalous, (*Engine).checkModbusTIDReuse, anyFC}},
		title:  titleModbusTIDReuse,
	},
	dCounterBackwards: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-counter-backwards",
			Name:        "DNP3 counter went backwards",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0856", "T0832"},
			Description: "A DNP3 running counter (group 20) reported lower than the outstation last reported it, with no restart indication (IIN1.7) and no freeze-and-clear request since, and not a wrap past the counter's top: a counter that cannot go back did, in a forged or rewritten response.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3Plausible, fcIn(dnp3.FuncResponse, dnp3.FuncUnsolicitedResponse)},
			{stageFunction, dnp3Requests, (*Engine).checkDNP3Clear, fcIn(dnp3.FuncRead, dnp3.FuncFreezeClear, dnp3.FuncFreezeClearNR)}},
		title: titleCounterBackwards,
	},
	dSilentChange: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-silent-change",
			Name:        "DNP3 input changed with no event",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0856", "T0832"},
			Description: "A DNP3 binary or double-bit input whose static value changed although the outstation, which reports events for that point, reported no event for it since its last static value (and no event buffer overflow, IIN2.3), and still none by its next answer to a read of class 0 and every event class: a state rewritten on the way, not changed in the field. Judged only in answers to reads of every class, where the events come first.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3Plausible, fcIn(dnp3.FuncResponse, dnp3.FuncUnsolicitedResponse)},
			{stageFunction, dnp3Requests, (*Engine).checkDNP3Clear, fcIn(dnp3.FuncRead)}},
		title: titleSilentChange,
	},
	dQualityChange: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "dnp3-quality-change",
			Name:        "DNP3 point quality changed",
			Severity:    policy.SeverityLow,
			Attack:      []string{"T0856", "T0832"},
			Description: "The ONLINE or COMM_LOST flag of a DNP3 static point (binary, double-bit, counter, analog input) changed, or its RESTART flag was raised, from what the outstation last reported, outside a restart (IIN1.7): a field device lost or back, or a point's quality rewritten on the way. One alert per outstation and kind of point within the window.",
			Category:    CategoryIntegrity,
		},
		checks: []check{{stageFunction, dnp3Answers, (*Engine).checkDNP3Plausible, fcIn(dnp3.FuncResponse, dnp3.FuncUnsolicitedResponse)}},
		title:  titleQualityChange,
	},
	dBroadcast: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "broadcast-write",
			Name:        "Broadcast write or control",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0855", "T0831"},
			Description: "A write or control sent to every device at once: Modbus unit 0, or DNP3 destination addresses 0xFFFD-0xFFFF.",
			Category:    CategoryBroadcast,
		},
		checks: []check{{stageFunction, modbusRequests, (*Engine).checkModbusBroadcast, modbusMayChange}, {stageFunction, dnp3Requests, (*Engine).checkDNP3Broadcast, dnp3MayChange}},
		title:  titleBroadcast,
	},
	dFlood: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "request-flood",
			Name:        "Request flood",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0814"},
			Description: "More than rate.max requests to one device, from all masters together, within rate.per.",
			Rate:        &policy.Rate{Max: 100, Per: time.Second},
			Category:    CategoryFlood,
		},
		checks: []check{{stageMessage, dnp3Anomalous, (*Engine).checkDNP3FloodAnomaly, anyFC}, {stageCount, modbusRequests, (*Engine).checkFlood, anyFC}, {stageCount, dnp3Requests, (*Engine).checkFlood, anyFC}},
		title:  titleFlood,
	},
	dPublic: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "public-address",
			Name:        "OT host talks to a public address",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0883", "T0869"},
			Description: "A host seen speaking Modbus or DNP3 exchanges traffic with a public address: one outside the private (RFC 1918, RFC 4193), shared (100.64.0.0/10), link-local and loopback ranges. Documentation ranges count as public.",
			Category:    CategoryNetwork,
		},
		checks: []check{{stageCount, allMessages, (*Engine).checkPublic, anyFC}},
		title:  titlePublic,
	},
	dNewAsset: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "new-asset",
			Name:        "New asset",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0848"},
			Description: "A Modbus or DNP3 device or master appears that was not seen while learning and is not in the assets section.",
			Baseline:    true,
			Category:    CategoryInventory,
		},
		checks: []check{{stageCount, allMessages, (*Engine).checkNewAsset, anyFC}},
		title:  titleNewAsset,
	},
	dARPSpoof: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "arp-spoof",
			Name:        "ARP spoofing",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0830"},
			Description: "A second MAC claims an IPv4 address in ARP while the first still claims it (within window): an adversary in the middle redirecting traffic, or two devices with one address. Also an ARP reply whose sender MAC is not the Ethernet source of its frame. A MAC that takes over an address no one claimed for window passes: a replaced device.",
			Window:      10 * time.Minute,
			Category:    CategoryNetwork,
		},
		title: titleARPSpoof,
	},
	dARPStorm: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "arp-storm",
			Name:        "Gratuitous ARP storm",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0830"},
			Description: "More than rate.max gratuitous ARP frames (requests or replies announcing the sender's own address) from one MAC within rate.per: a device re-announcing itself without end, or a spoofing tool keeping caches poisoned.",
			Rate:        &policy.Rate{Max: 10, Per: 10 * time.Second},
			Category:    CategoryNetwork,
		},
		title: titleARPStorm,
	},
	dScanHosts: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "scan-hosts",
			Name:        "Host scan",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0846"},
			Description: "One source probes more than rate.max distinct addresses of the plant's own (private, shared, link-local) within rate.per, by ARP requests, ICMP echo requests, TCP connection attempts or UDP: a sweep for live hosts. Internet addresses do not count: a browser reaches many.",
			Rate:        &policy.Rate{Max: 24, Per: 10 * time.Second},
			Category:    CategoryReconnaissance,
		},
		title: titleScanHosts,
	},
	dScanPorts: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "scan-ports",
			Name:        "Port scan",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0840", "T0846"},
			Description: "One source tries more than rate.max distinct TCP or UDP ports below 49152 on one host of the plant within rate.per: an enumeration of its services. The dynamic range does not count: DCE/RPC and passive FTP hand its ports out per session.",
			Rate:        &policy.Rate{Max: 16, Per: 10 * time.Second},
			Category:    CategoryReconnaissance,
		},
		title: titleScanPorts,
	},
	dScanRejects: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "scan-rejects",
			Name:        "Rejected connection storm",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0846", "T0840"},
			Description: "Connection attempts from one host rejected at more than rate.max distinct targets (host and port) within rate.per, by a TCP reset answering its SYN or an ICMP destination unreachable: a scan hitting closed ports and absent hosts. A client retrying one closed port is no scan.",
			Rate:        &policy.Rate{Max: 20, Per: 10 * time.Second},
			Category:    CategoryReconnaissance,
		},
		title: titleScanRejects,
	},
	dRemote: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "remote-access",
			Name:        "Remote access or file transfer between OT hosts",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0886", "T0867"},
			Description: "RDP, SSH, Telnet, VNC, SMB, NetBIOS session or FTP between two OT hosts (hosts seen speaking Modbus or DNP3, or the ends of a learned conversation), unless a learned baseline has that link with that service: a remote session or a tool copied sideways.",
			Category:    CategoryNetwork,
		},
		title: titleRemote,
	},
	dSpoof: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "ics-spoof",
			Name:        "Forged ICS packets",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0830", "T0856", "T0855"},
			Description: "Modbus or DNP3 packets that carry a host's address but another source MAC or TTL (IPv6: hop limit) than that host's ICS packets had, whether in the same connection or a new one: a message injected or forged by another machine, or a man in the middle. A host's stack sends with one TTL and a switch delivers its frames with one MAC; a forging tool rarely matches both. A host seen only with the new MAC and TTL for six hours (a replaced device, a new route) passes. One alert per host and look within window.",
			Window:      10 * time.Minute,
			Category:    CategoryIntegrity,
		},
		title: titleSpoof,
	},
	dStreamConflict: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "stream-conflict",
			Name:        "Two versions of an ICS stream",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0830", "T0856", "T0855"},
			Description: "A TCP segment of a Modbus or DNP3 connection that repeats stream bytes already seen (delivered, or held out of order) with different content. A retransmission repeats its bytes; two versions of the same sequence numbers mean two senders: an injected message racing the real one, or a man in the middle rewriting the stream. The evidence holds both versions from the first byte that differs. Keep-alives (one byte before the next) pass; after a capture gap only bytes seen are compared.",
			Category:    CategoryIntegrity,
		},
		title: titleStreamConflict,
	},
	dStreamUnseen: {
		DetectorSpec: policy.DetectorSpec{
			ID:          "stream-unseen",
			Name:        "ICS bytes acknowledged that the tap never saw",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0830", "T0856", "T0855"},
			Description: "A Modbus or DNP3 host acknowledged bytes of its peer that never crossed the tap, and the stream went on past them (they did not come late): bytes sent around the tap, by a host on another path or a man in the middle whose two legs disagree, unless the tap lost them. Capture loss is ruled out in one of two ways. Either the bytes would have had to cross the wire faster than 10 Gb/s in the time the sender was silent on the tap (an acknowledgement far outside the stream). Or one connection has more such stretches within a minute than the capture's own loss explains: the chance of so many, at the rate the other TCP flows lost segments in the same time (at least 1 in 10,000), is below one in a million. A single stretch alone never fires.",
			Window:      10 * time.Minute,
			Category:    CategoryIntegrity,
		},
		title: titleStreamUnseen,
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-master",
			Name:        "New master",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0848", "T0855"},
			Description: "A host sends requests that no learned master sent: a rogue master.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-conversation",
			Name:        "New conversation",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0855"},
			Description: "A known master talks to a device it did not talk to while learning.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-function",
			Name:        "New function code",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0855"},
			Description: "A master uses a function code on a device that it did not use while learning.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-address",
			Name:        "New address or point",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0861", "T0836"},
			Description: "A master reads or writes a Modbus table address, or a DNP3 group and point, outside what it used while learning.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-value-range",
			Name:        "Written value out of learned range",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0836", "T0831"},
			Description: "A written value (register, coil, analog output, control) falls outside the range learned for its address, widened by the learning margin.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-write-rate",
			Name:        "Write rate far above normal",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0806", "T0836"},
			Description: "A master's writes to a device, counted over window, run far above the rate learned for that pair.",
			Window:      time.Minute,
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-host",
			Name:        "New host or MAC",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0848", "T0864"},
			Description: "A host of the plant's own addresses (private, shared, link-local) that the baseline does not have appears on the tap, or a learned host claims its address in ARP with a MAC it never used.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-link",
			Name:        "New link",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0886", "T0869"},
			Description: "A client talks to a service of a server that it never used while learning (the service itself was learned, from other clients).",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-service",
			Name:        "New service on a host",
			Severity:    policy.SeverityHigh,
			Attack:      []string{"T0869", "T0886"},
			Description: "A host serves a port no client used on it while learning: a new listener, such as a remote shell or a command-and-control channel.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-protocol",
			Name:        "New protocol on a known link",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0869", "T0885"},
			Description: "A learned link carries a different service than it did while learning: a tunnel or a tool on a port known for something else.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-silent",
			Name:        "Polling conversation gone silent",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0827", "T0829", "T0881"},
			Description: "A master stops polling a device for longer than rate_factor times the longest gap learned between its requests (and at least that gap plus 30 s): a device down, a link cut, a master stopped or blinded. Reported once, until the conversation speaks again.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
	{
		DetectorSpec: policy.DetectorSpec{
			ID:          "baseline-new-point",
			Name:        "Point appeared or disappeared",
			Severity:    policy.SeverityMedium,
			Attack:      []string{"T0856", "T0832", "T0830"},
			Description: "A device answers otherwise than it did while learning (the answered and reported fields of its conversation): a DNP3 outstation reports a static object or points it never reported, or an event of a point it has no static value for, or, answering a class 0 read in one fragment, fewer of the learned points of a static object than it always did; a Modbus server answers a read of addresses it never answered with data, or answers one it always answered with an illegal data address exception. A changed device configuration, or responses forged or rewritten on the way.",
			Baseline:    true,
			Category:    CategoryBaseline,
		},
	},
}

// init hands the policy package the declarative part of the table, so
// that a policy can name, tune and validate the detectors while their
// checks stay here.
func init() {
	specs := make([]policy.DetectorSpec, len(Detectors))
	for i := range Detectors {
		specs[i] = Detectors[i].DetectorSpec
	}
	policy.RegisterDetectors(specs)
}
