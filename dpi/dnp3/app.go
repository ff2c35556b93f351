package dnp3

// appScratch is the Decoder's space for one application fragment: the
// Parser and the object headers and points of the Message.
type appScratch struct {
	p       Parser
	objects []ObjectHeader
	points  []Point
}

// init allocates the scratch arrays for cfg's limits (defaults for zero
// fields). newDecoder calls it; decodeApp calls it too when it finds the
// arrays missing.
func (s *appScratch) init(cfg Config) {
	no, np := cfg.MaxObjects, cfg.MaxPoints
	if no <= 0 {
		no = DefaultMaxObjects
	}
	if np <= 0 {
		np = DefaultMaxPoints
	}
	s.objects = make([]ObjectHeader, 0, no)
	s.points = make([]Point, 0, np)
}

// flag records anomaly r on m: the first becomes Malformed.
func flag(m *Message, r Reason) {
	if m.Malformed == 0 {
		m.Malformed = r
	}
	m.Anomalies |= 1 << r
}

// decodeApp fills m's application fields (AppControl, FIR, FIN, CON, UNS,
// Seq, FC, Dir, IIN, Objects, Points, MorePoints, Fragment) from a
// complete application fragment starting at the application control
// octet. Dir is left alone when the fragment is too short to hold a
// function code. It adds its anomalies to Malformed and Anomalies and
// keeps those already there (link and transport ones). Decoding stops at
// the first object header that cannot be walked; the headers and points
// before it stay.
func (d *Decoder) decodeApp(m *Message, fragment []byte) {
	s := &d.app
	if s.objects == nil {
		s.init(d.cfg)
	}
	objs := s.objects[:0]
	pts := s.points[:0]
	m.Fragment = fragment
	m.MorePoints = 0

	p := &s.p
	h, err := p.Start(fragment)
	m.AppControl = h.Control
	m.FIR, m.FIN, m.CON, m.UNS = h.FIR, h.FIN, h.CON, h.UNS
	m.Seq = h.Seq
	m.FC = h.FC
	if h.Dir != 0 {
		m.Dir = h.Dir // else the link layer's guess stays
	}
	m.IIN, m.HasIIN = h.IIN, h.HasIIN
	if err == nil {
	headers:
		for {
			oh, err := p.Next()
			switch err {
			case nil, Error(ObjectTooShort), Error(UnknownObject):
			default:
				break headers
			}
			if err != nil && oh.Size == 0 {
				break // the header itself was cut off
			}
			if len(objs) == cap(objs) {
				mergeAnomalies(m, p)
				flag(m, TooManyObjects)
				break
			}
			oh.FirstPoint = len(pts)
			for {
				pt, perr := p.Point()
				if perr != nil {
					break
				}
				if len(pts) < cap(pts) {
					pts = append(pts, pt)
				} else {
					m.MorePoints++
				}
			}
			oh.NumPoints = len(pts) - oh.FirstPoint
			objs = append(objs, oh)
			if err != nil {
				break
			}
		}
	}
	mergeAnomalies(m, p)
	m.Objects = objs
	m.Points = pts
}

// mergeAnomalies adds the parser's anomalies to m.
func mergeAnomalies(m *Message, p *Parser) {
	if m.Malformed == 0 {
		m.Malformed = p.first
	}
	m.Anomalies |= p.anomalies
}
