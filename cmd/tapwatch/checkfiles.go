package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/config"
	"github.com/tapwatch/tapwatch/internal/fileaccess"
	"github.com/tapwatch/tapwatch/uplink"
)

// serviceUser is the daemon's user in the package's unit
// (board/deb/tapwatch.service, User=).
const serviceUser = "tapwatch"

// serviceHidden are the folders the package's unit hides from the daemon,
// or gives it a private copy of (board/deb/tapwatch.service).
var serviceHidden = []struct{ dir, why string }{
	{"/home", "ProtectHome=yes"},
	{"/root", "ProtectHome=yes"},
	{"/run/user", "ProtectHome=yes"},
	{"/tmp", "PrivateTmp=yes: it has its own, empty"},
	{"/var/tmp", "PrivateTmp=yes: it has its own, empty"},
}

// fileCheck is what check found about the files the daemon reads.
type fileCheck struct {
	problems []error  // each at the config field that names the file
	warnings []string // also at the field
	said     []string // what was checked, for the description
}

// namedFile is a file the daemon reads and the config field naming it.
type namedFile struct {
	field, path string
	secret      bool // a key or a password: nobody else should read it
}

// checkFiles opens and parses the uplink's files as the daemon does at
// start (the CA, the certificate with its key, the password file). Run
// as root, with daemonUser set, it also checks that user can read them
// and the policy and baseline, through the modes, owners and ACLs on the
// way, and warns of a file in a folder the package's unit hides from the
// daemon. A user that is not there is a problem when userGiven (--user),
// and otherwise only said: the package is not installed here.
func checkFiles(cfg *config.Config, daemonUser string, userGiven bool) fileCheck {
	var c fileCheck
	var files []namedFile
	add := func(field, path string, secret bool) {
		if path != "" {
			files = append(files, namedFile{field, path, secret})
		}
	}
	add("policy", cfg.Policy, false)
	add("baseline", cfg.Baseline, false)
	if u := cfg.Uplink; u != nil {
		add("uplink.tls.ca", u.TLS.CA, false)
		add("uplink.tls.cert", u.TLS.Cert, false)
		add("uplink.tls.key", u.TLS.Key, true)
		add("uplink.password_file", u.PasswordFile, true)
		c.checkUplink(cfg, *u)
	}
	for _, f := range files {
		if fi, err := os.Stat(f.path); err == nil && f.secret && fi.Mode().Perm()&0o004 != 0 {
			c.warnings = append(c.warnings, fmt.Sprintf("%s: %s is readable by every user (mode %04o): chmod o-r %s", f.field, f.path, fi.Mode().Perm(), f.path))
		}
	}
	if daemonUser == "" {
		return c
	}
	if me, err := user.Current(); err == nil && (me.Username == daemonUser || me.Uid == daemonUser) {
		c.said = append(c.said, "read its files as user "+me.Username+", the daemon's")
		return c
	}
	if os.Geteuid() != 0 {
		c.said = append(c.said, fmt.Sprintf("not checked whether user %s can read its files: check runs as uid %d; run it as root (sudo) for that", daemonUser, os.Geteuid()))
		return c
	}
	u, err := fileaccess.Lookup(daemonUser)
	if err != nil && userGiven {
		c.problems = append(c.problems, fmt.Errorf("--user %s: %w", daemonUser, err))
		return c
	}
	if err != nil {
		c.said = append(c.said, fmt.Sprintf("not checked whether user %s can read its files: %v (the package creates user %s; --user names another)", daemonUser, err, serviceUser))
		return c
	}
	var fields []string
	for _, f := range files {
		fields = append(fields, f.field)
		for _, h := range serviceHidden {
			if f.path == h.dir || strings.HasPrefix(f.path, h.dir+"/") {
				c.warnings = append(c.warnings, fmt.Sprintf("%s: %s is in %s, which tapwatch.service hides from the daemon (%s): put it in /etc/tapwatch", f.field, f.path, h.dir, h.why))
			}
		}
		var denied *fileaccess.Denied
		if err := u.CanRead(f.path); errors.As(err, &denied) {
			c.problems = append(c.problems, cfg.FieldError(f.field, "%v", err))
		}
		// Any other error (no such file) is reported where the file is read.
	}
	if len(fields) > 0 {
		c.said = append(c.said, fmt.Sprintf("read as user %s (groups %s), as tapwatch.service runs it: %s", u.Name, strings.Join(u.Groups, ", "), strings.Join(fields, ", ")))
	}
	return c
}

// checkUplink loads the uplink's TLS files and password file with the
// uplink's own code, one field at a time, so that every problem is
// reported.
func (c *fileCheck) checkUplink(cfg *config.Config, u uplink.Config) {
	bad := func(field, label string, err error) {
		c.problems = append(c.problems, cfg.FieldError(field, "%s", strings.TrimPrefix(err.Error(), label+": ")))
	}
	if ca := u.TLS.CA; ca != "" {
		if _, err := (uplink.TLSConfig{CA: ca}).ClientTLS(); err != nil {
			bad("uplink.tls.ca", "uplink.tls.ca", err)
		} else {
			c.said = append(c.said, "verify the broker with the CA certificates of "+ca)
		}
	}
	if cert := u.TLS.Cert; cert != "" {
		tc, err := (uplink.TLSConfig{Cert: cert, Key: u.TLS.Key}).ClientTLS()
		var pe *fs.PathError
		switch {
		case err != nil && errors.As(err, &pe) && pe.Path == u.TLS.Key:
			bad("uplink.tls.key", "uplink.tls.cert/key", err)
		case err != nil:
			bad("uplink.tls.cert", "uplink.tls.cert/key", err)
		default:
			c.client(cert, tc.Certificates[0].Leaf)
		}
	}
	if pf := u.PasswordFile; pf != "" {
		pw, err := (uplink.Config{PasswordFile: pf}).Password()
		switch {
		case err != nil:
			bad("uplink.password_file", "uplink.password_file", err)
		case pw == "":
			c.warnings = append(c.warnings, fmt.Sprintf("uplink.password_file: the first line of %s, the password, is empty", pf))
		default:
			c.said = append(c.said, "log in as "+u.Username+" with the password in "+pf)
		}
	}
}

// client says which certificate the box presents, and warns when it is
// not valid now (an expired certificate, or a wrong clock).
func (c *fileCheck) client(path string, leaf *x509.Certificate) {
	if leaf == nil {
		return
	}
	const day = "2006-01-02"
	c.said = append(c.said, fmt.Sprintf("present the certificate %s (%s, valid until %s) and its key", path, leaf.Subject, leaf.NotAfter.Format(day)))
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		c.warnings = append(c.warnings, fmt.Sprintf("uplink.tls.cert: %s expired on %s: the broker will refuse it", path, leaf.NotAfter.Format(day)))
	case now.Before(leaf.NotBefore):
		c.warnings = append(c.warnings, fmt.Sprintf("uplink.tls.cert: %s is not valid before %s: is the clock right?", path, leaf.NotBefore.Format(day)))
	}
}
