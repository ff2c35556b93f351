package dnp3

// appScratch is the Decoder's space for one application fragment: the
// Parser and the object headers and points of the Message.
type appScratch struct {
	p       Parser
	objects []ObjectHeader
	points  []Point
	spare   Point // decodes points beyond MaxPoints, which are counted only
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
	m.lazy = nil

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
		// Each header is read in place, into the next slot of the list;
		// one past MaxObjects into over, for its anomalies only.
		var over ObjectHeader
	headers:
		for {
			oh := &over
			if n := len(objs); n < cap(objs) {
				oh = &objs[:n+1][n]
			}
			err := p.header(oh)
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
			if !d.cfg.LazyPoints {
				pts = readPoints(p, pts, &s.spare, &m.MorePoints)
			}
			oh.NumPoints = len(pts) - oh.FirstPoint
			objs = objs[:len(objs)+1]
			if err != nil {
				break
			}
		}
	}
	mergeAnomalies(m, p)
	m.Objects = objs
	m.Points = pts
	if d.cfg.LazyPoints {
		m.lazy = s
	}
}

// readPoints appends the current header's points to pts, up to its
// capacity; the points beyond are decoded into spare and counted in more.
func readPoints(p *Parser, pts []Point, spare *Point, more *int) []Point {
	for {
		if len(pts) == cap(pts) {
			if p.point(spare) != nil {
				return pts
			}
			*more++
			continue
		}
		pts = pts[:len(pts)+1]
		if p.point(&pts[len(pts)-1]) != nil {
			return pts[:len(pts)-1]
		}
	}
}

// DecodePoints decodes the point values of a fragment that the Decoder,
// configured with LazyPoints, left undecoded: it fills Points, each
// header's FirstPoint and NumPoints, and MorePoints. It does nothing when
// the points are decoded already. Call it from the Handler only.
func (m *Message) DecodePoints() {
	s := m.lazy
	if s == nil {
		return
	}
	m.lazy = nil
	var p Parser
	if _, err := p.Start(m.Fragment); err != nil {
		return
	}
	pts := s.points[:0]
	var oh ObjectHeader
	for i := range m.Objects {
		if err := p.header(&oh); err != nil && err != Error(ObjectTooShort) && err != Error(UnknownObject) {
			break
		}
		h := &m.Objects[i]
		h.FirstPoint = len(pts)
		pts = readPoints(&p, pts, &s.spare, &m.MorePoints)
		h.NumPoints = len(pts) - h.FirstPoint
	}
	m.Points = pts
}

// mergeAnomalies adds the parser's anomalies to m.
func mergeAnomalies(m *Message, p *Parser) {
	if m.Malformed == 0 {
		m.Malformed = p.first
	}
	m.Anomalies |= p.anomalies
}
