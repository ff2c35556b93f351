// Package fileaccess tells whether another user could read a file, from
// the modes, owners and POSIX ACLs along its path, without becoming that
// user: tapwatch check, run as root, checks the files the daemon's own
// user must read, and says which file or folder stops it, and why.
//
// It follows the kernel's rules for a process without CAP_DAC_OVERRIDE
// (the daemon's unit grants none): search (x) on every folder of the
// path, through symbolic links, and read (r) on the file, from the owner,
// named-user, group or other entry that applies. It does not see what a
// security module (AppArmor, SELinux) or a mount option adds.
package fileaccess

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// User is whom to check for.
type User struct {
	Name   string
	UID    uint32
	GIDs   []uint32 // the primary group first
	Groups []string // their names, for messages
}

// Lookup finds a user by name, or by numeric uid, with its groups (from
// /etc/passwd and /etc/group, or NSS when built with cgo).
func Lookup(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr != nil {
			return nil, err
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q", name, u.Uid)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %s: its groups: %w", name, err)
	}
	// The primary group first: GroupIds does not promise an order.
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == u.Gid })
	ids = append([]string{u.Gid}, ids...)
	out := &User{Name: u.Username, UID: uint32(uid)}
	for _, id := range ids {
		gid, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			continue
		}
		out.GIDs = append(out.GIDs, uint32(gid))
		out.Groups = append(out.Groups, groupName(uint32(gid)))
	}
	return out, nil
}

// Denied is a file or folder on the way that stops the user.
type Denied struct {
	User  *User
	Path  string
	Dir   bool // a folder on the way, which the user cannot enter
	Mode  fs.FileMode
	Owner uint32
	Group uint32
	ACL   bool // the file has a POSIX ACL, which decided
}

func (d *Denied) Error() string {
	verb, bit := "read", "r"
	if d.Dir {
		verb, bit = "enter", "x"
	}
	acl := ""
	if d.ACL {
		acl = ", and an ACL (getfacl shows it)"
	}
	fix := ""
	if len(d.User.Groups) > 0 {
		fix = fmt.Sprintf(" (chgrp %s %s; chmod g+%s %s)", d.User.Groups[0], d.Path, bit, d.Path)
	}
	return fmt.Sprintf("%s: user %s (groups %s) cannot %s it: mode %04o, owner %s, group %s%s%s",
		d.Path, d.User.Name, strings.Join(d.User.Groups, ", "), verb, d.Mode.Perm(), userName(d.Owner), groupName(d.Group), acl, fix)
}

// Permission bits, as in a mode's rwx.
const (
	permRead   = 4
	permSearch = 1
)

// CanRead reports whether u could open path for reading: nil, a
// *Denied, or the error of a file that is not there.
func (u *User) CanRead(path string) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	todo := strings.Split(path, "/")
	cur := "/"
	for links := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		if err := u.may(cur, permSearch); err != nil {
			return err
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return &fs.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return u.may(cur, permRead)
}

// may checks one permission on path, which has no symbolic link in it.
func (u *User) may(path string, want uint16) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner known", path)
	}
	acl, err := readACL(path)
	if err != nil {
		return err
	}
	hasACL := acl != nil
	if !hasACL {
		m := uint16(fi.Mode().Perm())
		acl = []aclEntry{{tag: aclUserObj, perm: m >> 6 & 7}, {tag: aclGroupObj, perm: m >> 3 & 7}, {tag: aclOther, perm: m & 7}}
	}
	if u.allowed(acl, st.Uid, st.Gid, want) {
		return nil
	}
	return &Denied{User: u, Path: path, Dir: want == permSearch, Mode: fi.Mode(), Owner: st.Uid, Group: st.Gid, ACL: hasACL}
}

// The tags of a POSIX ACL's entries (linux/posix_acl_xattr.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// allowed is the access check of acl(5): the owner's entry, else a named
// user's, else any matching group's (owning or named) that grants it,
// else other's; named users and groups are limited by the mask.
func (u *User) allowed(acl []aclEntry, owner, group uint32, want uint16) bool {
	mask := uint16(7)
	for _, e := range acl {
		if e.tag == aclMask {
			mask = e.perm
		}
	}
	grants := func(perm uint16) bool { return perm&want == want }
	if u.UID == owner {
		for _, e := range acl {
			if e.tag == aclUserObj {
				return grants(e.perm)
			}
		}
		return false
	}
	for _, e := range acl {
		if e.tag == aclUser && e.id == u.UID {
			return grants(e.perm & mask)
		}
	}
	inGroup := false
	for _, e := range acl {
		gid := e.id
		switch e.tag {
		case aclGroupObj:
			gid = group
		case aclGroup:
		default:
			continue
		}
		if !slices.Contains(u.GIDs, gid) {
			continue
		}
		inGroup = true
		if grants(e.perm & mask) {
			return true
		}
	}
	if inGroup {
		return false
	}
	for _, e := range acl {
		if e.tag == aclOther {
			return grants(e.perm)
		}
	}
	return false
}

// readACL reads path's access ACL; nil when it has none beyond its mode.
func readACL(path string) ([]aclEntry, error) {
	const name = "system.posix_acl_access"
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, name, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("%s: reading its ACL: %w", path, err)
		}
		return parseACL(path, buf[:n])
	}
}

// parseACL decodes the xattr's form: a version (2), then entries of tag,
// permissions and id, little-endian.
func parseACL(path string, b []byte) ([]aclEntry, error) {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != 2 || (len(b)-4)%8 != 0 {
		return nil, fmt.Errorf("%s: an ACL of a form not known (%d bytes)", path, len(b))
	}
	var acl []aclEntry
	for b = b[4:]; len(b) > 0; b = b[8:] {
		acl = append(acl, aclEntry{tag: binary.LittleEndian.Uint16(b), perm: binary.LittleEndian.Uint16(b[2:]) & 7, id: binary.LittleEndian.Uint32(b[4:])})
	}
	return acl, nil
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}
