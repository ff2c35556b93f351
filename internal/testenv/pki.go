package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test CA with a server certificate and a client certificate,
// in PEM files, for mutual TLS with a real broker.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	Authority                                        CA // to issue more certificates
}

// CA is a test certificate authority; File is its PEM certificate.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	File string
}

// NewCA makes a self-signed CA, written to dir/name.pem.
func NewCA(t testing.TB, dir, name string) CA {
	t.Helper()
	tmpl := certTemplate(t, name)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, key, der := signCert(t, tmpl, nil, nil)
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return CA{cert, key, file}
}

// Issue writes a certificate signed by ca, with the common name name,
// and its key, as dir/name.pem and dir/name.key. A server certificate is
// for localhost, 127.0.0.1 and hosts (names or addresses); a client
// certificate is for client authentication only.
func (ca CA) Issue(t testing.TB, dir, name string, server bool, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	tmpl := certTemplate(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	_, key, der := signCert(t, tmpl, ca.Cert, ca.Key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

// NewPKI makes, in dir, the CA (ca.pem), a server certificate for
// localhost, 127.0.0.1 and hosts (server.pem, server.key) and a client
// certificate (client.pem, client.key).
func NewPKI(t testing.TB, dir string, hosts ...string) PKI {
	t.Helper()
	ca := NewCA(t, dir, "ca")
	p := PKI{CA: ca.File, Authority: ca}
	p.ServerCert, p.ServerKey = ca.Issue(t, dir, "server", true, hosts...)
	p.ClientCert, p.ClientKey = ca.Issue(t, dir, "client", false)
	return p
}

// MosquittoTLS is the mosquitto listener lines for TLS with the PKI's
// server certificate, requiring a client certificate the CA signed.
func (p PKI) MosquittoTLS() []string {
	return []string{"cafile " + p.CA, "certfile " + p.ServerCert, "keyfile " + p.ServerKey, "require_certificate true"}
}

// certTemplate is a certificate for name, valid from an hour ago for a
// day.
func certTemplate(t testing.TB, name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: certSerial(t),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"tapwatch tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// signCert makes a new P-256 key and a certificate of tmpl for it, signed
// by parent (nil: self-signed).
func signCert(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, der
}

func certSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
