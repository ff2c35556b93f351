package lab

import (
	"math"
	"slices"
	"sync"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// The PLC's data model. Addresses are 0-based, as on the wire (holding
// register 5 is 40006 in the 1-based convention, "mbpoll -r 6").
//
// Holding registers (read/write):
//
//	0  mode: 0 manual, 1 auto (the level controller drives the inlet valve)
//	1  tank level setpoint, ‰ of full (0-1000)
//	2  level high alarm, ‰ (0-1000)
//	3  level low alarm, ‰ (0-1000)
//	4  inlet valve position in manual mode, % (0-100)
//	5  pump 3 speed setpoint, rpm (100-200)
//	6  pump ramp, rpm per second (1-100)
//	7-19 spare
//
// Input registers (read only, they change over time):
//
//	0  pump 3 speed, rpm: ramps towards the setpoint while the pump runs
//	1  tank level, ‰
//	2  inlet valve position, %
//	3  outlet flow, l/min
//	4  motor temperature, 0.1 °C
//	5  seconds since start (wraps at 65536)
//	6-9 spare
//
// Coils: 0 pump 3 run, 1 inlet valve enable, 2 alarm reset (momentary),
// 3-15 spare. Discrete inputs: 0 pump running, 1 level high, 2 level low,
// 3 alarm latched, 4-15 spare.
//
// A write of a value outside a register's range is refused with exception
// 3 (illegal data value), as a PLC with configured limits would; it is
// still on the wire for tapwatch to see.
const (
	HoldingRegisters = 20
	InputRegisters   = 10
	Coils            = 16
	DiscreteInputs   = 16

	RegMode          = 0
	RegLevelSetpoint = 1
	RegLevelHigh     = 2
	RegLevelLow      = 3
	RegValveManual   = 4
	RegPumpSetpoint  = 5
	RegPumpRamp      = 6

	InPumpSpeed   = 0
	InLevel       = 1
	InValve       = 2
	InFlow        = 3
	InTemperature = 4
	InUptime      = 5

	CoilPumpRun    = 0
	CoilValve      = 1
	CoilAlarmReset = 2

	DiscPumpRunning = 0
	DiscLevelHigh   = 1
	DiscLevelLow    = 2
	DiscAlarm       = 3

	PumpSetpointMin = 100
	PumpSetpointMax = 200
)

// limits are the accepted values of the holding registers with limits.
var limits = map[int][2]uint16{
	RegMode:          {0, 1},
	RegLevelSetpoint: {0, 1000},
	RegLevelHigh:     {0, 1000},
	RegLevelLow:      {0, 1000},
	RegValveManual:   {0, 100},
	RegPumpSetpoint:  {PumpSetpointMin, PumpSetpointMax},
	RegPumpRamp:      {1, 100},
}

// Plant is the PLC's registers and the process they control: a tank
// filled through an inlet valve and emptied by pump 3. It implements
// simonvetter/modbus's RequestHandler. Its methods may be called from any
// goroutine.
type Plant struct {
	// Unit is the Modbus unit id the PLC answers to, besides 0
	// (broadcast) and 255 (the usual "this device" over TCP); other units
	// get exception 11 (gateway target failed to respond).
	Unit uint8
	// OnWrite, when set, is called after every accepted write (under the
	// plant's lock: it must not call the plant).
	OnWrite func(client string, table string, addr uint16, values []uint16)

	mu       sync.Mutex
	holding  [HoldingRegisters]uint16
	input    [InputRegisters]uint16
	coils    [Coils]bool
	discrete [DiscreteInputs]bool

	elapsed time.Duration
	speed   float64 // rpm
	level   float64 // ‰
	valve   float64 // %
	temp    float64 // °C
	alarm   bool
}

// NewPlant returns a plant in its initial state: auto mode, pump running at
// its setpoint of 150 rpm, tank at its level setpoint.
func NewPlant(unit uint8) *Plant {
	p := &Plant{Unit: unit, speed: 150, level: 600, valve: 50, temp: 40}
	p.holding[RegMode] = 1
	p.holding[RegLevelSetpoint] = 600
	p.holding[RegLevelHigh] = 900
	p.holding[RegLevelLow] = 100
	p.holding[RegValveManual] = 50
	p.holding[RegPumpSetpoint] = 150
	p.holding[RegPumpRamp] = 10
	p.coils[CoilPumpRun] = true
	p.coils[CoilValve] = true
	p.publish()
	return p
}

// Step advances the process by dt.
func (p *Plant) Step(dt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step(dt)
}

func (p *Plant) step(dt time.Duration) {
	s := dt.Seconds()
	if s <= 0 {
		return
	}
	p.elapsed += dt

	// The pump ramps towards its setpoint while it runs, down to 0 when not.
	target := 0.0
	if p.coils[CoilPumpRun] {
		target = float64(p.holding[RegPumpSetpoint])
	}
	ramp := float64(p.holding[RegPumpRamp]) * s
	switch {
	case p.speed < target:
		p.speed = math.Min(target, p.speed+ramp)
	case p.speed > target:
		p.speed = math.Max(target, p.speed-ramp)
	}

	// The inlet valve: a proportional level controller in auto mode, the
	// manual position otherwise; closed when not enabled. It moves at most
	// 20 % a second.
	want := float64(p.holding[RegValveManual])
	if p.holding[RegMode] == 1 {
		want = 50 + 0.5*(float64(p.holding[RegLevelSetpoint])-p.level)
	}
	if !p.coils[CoilValve] {
		want = 0
	}
	want = math.Max(0, math.Min(100, want))
	p.valve += math.Max(-20*s, math.Min(20*s, want-p.valve))

	// The inflow varies slowly (a supply pressure with a one-minute
	// cycle), so that the level and the valve never quite settle.
	supply := 1 + 0.25*math.Sin(2*math.Pi*p.elapsed.Seconds()/60)
	in := p.valve / 100 * 3 * supply // ‰ per second
	out := p.speed / 200 * 1.5
	p.level = math.Max(0, math.Min(1000, p.level+(in-out)*s))

	// The motor warms towards 30 °C plus a tenth of its speed.
	p.temp += (30 + p.speed/10 - p.temp) * math.Min(1, s/30)

	if p.coils[CoilAlarmReset] {
		p.alarm = false
		p.coils[CoilAlarmReset] = false
	}
	if p.level >= float64(p.holding[RegLevelHigh]) || p.level <= float64(p.holding[RegLevelLow]) {
		p.alarm = true
	}
	p.publish()
}

// publish copies the process into the input registers and discrete inputs.
func (p *Plant) publish() {
	p.input[InPumpSpeed] = uint16(math.Round(p.speed))
	p.input[InLevel] = uint16(math.Round(p.level))
	p.input[InValve] = uint16(math.Round(p.valve))
	p.input[InFlow] = uint16(math.Round(p.speed * 2.4)) // l/min
	p.input[InTemperature] = uint16(math.Round(p.temp * 10))
	p.input[InUptime] = uint16(int64(p.elapsed.Seconds()))
	p.discrete[DiscPumpRunning] = p.speed > 0
	p.discrete[DiscLevelHigh] = p.level >= float64(p.holding[RegLevelHigh])
	p.discrete[DiscLevelLow] = p.level <= float64(p.holding[RegLevelLow])
	p.discrete[DiscAlarm] = p.alarm
}

// Holding returns a copy of the holding registers.
func (p *Plant) Holding() [HoldingRegisters]uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holding
}

// Input returns a copy of the input registers.
func (p *Plant) Input() [InputRegisters]uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.input
}

// Coil returns coil i.
func (p *Plant) Coil(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.coils[i]
}

func (p *Plant) checkUnit(unit uint8) error {
	if unit == p.Unit || unit == 0 || unit == 255 {
		return nil
	}
	return smodbus.ErrGWTargetFailedToRespond
}

func inRange(addr, qty uint16, size int) bool {
	return qty > 0 && int(addr)+int(qty) <= size
}

// HandleCoils reads and writes coils (FC 1, 5, 15).
func (p *Plant) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if err := p.checkUnit(req.UnitId); err != nil {
		return nil, err
	}
	if !inRange(req.Addr, req.Quantity, Coils) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !req.IsWrite {
		return slices.Clone(p.coils[req.Addr : req.Addr+req.Quantity]), nil
	}
	copy(p.coils[req.Addr:], req.Args)
	p.publish()
	if p.OnWrite != nil {
		v := make([]uint16, len(req.Args))
		for i, b := range req.Args {
			if b {
				v[i] = 1
			}
		}
		p.OnWrite(req.ClientAddr, "coils", req.Addr, v)
	}
	return nil, nil
}

// HandleDiscreteInputs reads discrete inputs (FC 2).
func (p *Plant) HandleDiscreteInputs(req *smodbus.DiscreteInputsRequest) ([]bool, error) {
	if err := p.checkUnit(req.UnitId); err != nil {
		return nil, err
	}
	if !inRange(req.Addr, req.Quantity, DiscreteInputs) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.discrete[req.Addr : req.Addr+req.Quantity]), nil
}

// HandleHoldingRegisters reads and writes holding registers (FC 3, 6, 16).
// A write with any value out of its register's limits changes nothing.
func (p *Plant) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := p.checkUnit(req.UnitId); err != nil {
		return nil, err
	}
	if !inRange(req.Addr, req.Quantity, HoldingRegisters) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !req.IsWrite {
		return slices.Clone(p.holding[req.Addr : req.Addr+req.Quantity]), nil
	}
	for i, v := range req.Args {
		if l, ok := limits[int(req.Addr)+i]; ok && (v < l[0] || v > l[1]) {
			return nil, smodbus.ErrIllegalDataValue
		}
	}
	copy(p.holding[req.Addr:], req.Args)
	p.publish()
	if p.OnWrite != nil {
		p.OnWrite(req.ClientAddr, "holding", req.Addr, slices.Clone(req.Args))
	}
	return nil, nil
}

// HandleInputRegisters reads input registers (FC 4).
func (p *Plant) HandleInputRegisters(req *smodbus.InputRegistersRequest) ([]uint16, error) {
	if err := p.checkUnit(req.UnitId); err != nil {
		return nil, err
	}
	if !inRange(req.Addr, req.Quantity, InputRegisters) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.input[req.Addr : req.Addr+req.Quantity]), nil
}

// WritesOnlyFromHMI is the smallest policy for this network, which the
// daemon's tests enforce: only the HMI writes to the PLC (rule
// plc-writes-only-from-hmi, high). scripts/lab/policy.yaml is the lab's
// full one.
const WritesOnlyFromHMI = `assets:
  hmi: {ip: 10.10.1.10}
  plc: {ip: 10.10.1.20}
rules:
  - id: plc-writes-only-from-hmi
    name: Writes to the PLC only from the HMI
    when: {proto: modbus, dst: plc, op: write}
    unless: {src: hmi}
    severity: high
`
