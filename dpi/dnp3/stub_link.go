package dnp3

// Stub for the link/transport/SBO implementer: replace with real files
// (link.go, transport.go, sbo.go, ...) and delete this file.

type linkScratch struct{}
type linkState struct{}
type sboState struct{}

func newDecoder(cfg Config) *Decoder                                              { return &Decoder{cfg: cfg} }
func (c Config) validate() error                                                  { return nil }
func (c *Conn) reset(midStream bool)                                              {}
func (d *Decoder) feed(c *Conn, side Side, data []byte, meta Meta, h Handler) int { return len(data) }
func (d *Decoder) gap(c *Conn, side Side, pending []byte, meta Meta, h Handler)   {}
func (d *Decoder) datagram(c *Conn, side Side, data []byte, meta Meta, h Handler) {}
func (d *Decoder) close(c *Conn, meta Meta, h Handler)                            {}
func detect(b []byte) bool                                                        { return false }
