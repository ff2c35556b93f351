package service

// SNI returns the server name of a TLS ClientHello at the start of
// payload (one that Identify calls TLS) (the server_name extension, RFC 6066 §3), or nil. It reads only
// what the first record holds, so a name past a truncated payload or in a
// later record is nil. The result aliases payload, with its capacity cut
// to its length so that appending to it cannot overwrite payload. Only a
// name of host-name characters (letters, digits, '-', '.', '_') of at most
// 255 octets is returned, so that it is safe to log as is.
func SNI(payload []byte) []byte {
	const (
		recordHdr    = 5
		handshakeHdr = 4
		random       = 32
		hostName     = 0 // NameType host_name
	)
	b := payload
	if !tlsHello(b) || b[5] != 1 {
		return nil
	}
	// end bounds every read: the payload, the record and the ClientHello.
	end := min(len(b), recordHdr+be16(b[3:]), recordHdr+handshakeHdr+int(b[6])<<16+be16(b[7:]))
	p := recordHdr + handshakeHdr + 2 + random // legacy_version, random
	if p >= end {
		return nil
	}
	p += 1 + int(b[p]) // legacy_session_id
	if p+2 > end {
		return nil
	}
	p += 2 + be16(b[p:]) // cipher_suites
	if p+1 > end {
		return nil
	}
	p += 1 + int(b[p]) // legacy_compression_methods
	if p+2 > end {
		return nil
	}
	end = min(end, p+2+be16(b[p:])) // extensions
	p += 2
	for p+4 <= end {
		typ, n := be16(b[p:]), be16(b[p+2:])
		p += 4
		if typ != 0 {
			p += n
			continue
		}
		// ServerNameList: a length, then entries of a type, a length and
		// a name.
		// A cut extension or list holds no whole name, and lengths
		// that disagree are malformed.
		if p+n > end || n < 2 || be16(b[p:]) != n-2 {
			return nil
		}
		end = p + n
		for p += 2; p+3 <= end; {
			typ, n := b[p], be16(b[p+1:])
			p += 3
			if p+n > end {
				return nil
			}
			if typ == hostName {
				name := b[p : p+n : p+n]
				if !isHostName(name) {
					return nil
				}
				return name
			}
			p += n
		}
		return nil
	}
	return nil
}

func isHostName(s []byte) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !isDigit(c) && ('a' > c|0x20 || c|0x20 > 'z') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}
