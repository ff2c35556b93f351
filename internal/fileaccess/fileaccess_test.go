package fileaccess

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapwatch/tapwatch/internal/testenv"
	"golang.org/x/sys/unix"
)

// makeTree makes files and folders of every kind of mode in a new folder,
// and users around their owner (whoever runs the test): the owner, a
// member of its group and another user.
func makeTree(t *testing.T) (dir string, owner, member, other *User) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	me, gid := uint32(os.Getuid()), uint32(os.Getgid())
	owner = &User{Name: "owner", UID: me, GIDs: []uint32{gid}}
	member = &User{Name: "member", UID: me + 4242, GIDs: []uint32{gid + 4242, gid}, Groups: []string{"member", "shared"}}
	other = &User{Name: "other", UID: me + 4242, GIDs: []uint32{gid + 4242}}

	file := func(name string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	folder := func(name string, mode os.FileMode) {
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	file("0600", 0o600)
	file("0640", 0o640)
	file("0644", 0o644)
	file("0604", 0o604) // others may, the group may not: a member may not
	file("0060", 0o060) // the group may, the owner may not
	file("closed/key", 0o644)
	folder("closed", 0o700)
	file("group-x/key", 0o644)
	folder("group-x", 0o710)
	if err := os.Symlink(filepath.Join(dir, "closed", "key"), filepath.Join(dir, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../closed/key", filepath.Join(dir, "group-x", "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("0644", filepath.Join(dir, "open-link")); err != nil {
		t.Fatal(err)
	}

	return dir, owner, member, other
}

// TestCanReadLikeTheKernel: for every file of makeTree, a process of the
// member or the other user opens it when CanRead says it can, and only
// then.
func TestCanReadLikeTheKernel(t *testing.T) {
	testenv.Need(t, os.Geteuid() == 0, "starting a process as another user needs root: run the tests as root")
	dir, _, member, other := makeTree(t)
	var paths []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, path)
		}
		return nil
	})
	if len(paths) < 10 {
		t.Fatalf("only %d files", len(paths))
	}
	for _, u := range []*User{member, other} {
		for _, path := range paths {
			likeTheKernel(t, u, path)
		}
	}
}

// likeTheKernel checks CanRead against cat run as u.
func likeTheKernel(t *testing.T, u *User, path string) {
	t.Helper()
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GIDs[0], Groups: u.GIDs[1:]}}
	out, kerr := cmd.CombinedOutput()
	if err := u.CanRead(path); (err == nil) != (kerr == nil) {
		t.Errorf("%s, %s: CanRead says %v, the kernel %v: %s", u.Name, path, err, kerr, out)
	}
}

// TestCanRead: the owner's, the group's or the others' bits decide, in
// that order and exclusively; every folder on the way, also through a
// symbolic link, needs x. The files belong to whoever runs the test, and
// the users checked are made up around that owner.
func TestCanRead(t *testing.T) {
	dir, owner, member, other := makeTree(t)
	const ok, denied = "", "denied"
	for _, c := range []struct {
		name                 string
		owner, member, other string // "" readable, "denied", or the folder that stops
	}{
		{"0600", ok, denied, denied},
		{"0640", ok, ok, denied},
		{"0644", ok, ok, ok},
		{"0604", ok, denied, ok},
		{"0060", denied, ok, denied},
		{"closed/key", ok, "closed", "closed"},
		{"group-x/key", ok, ok, "group-x"},
		{"abs-link", ok, "closed", "closed"},
		{"group-x/rel-link", ok, "closed", "group-x"},
		{"open-link", ok, ok, ok},
		{"./group-x/../0640", ok, ok, denied},
	} {
		for _, u := range []struct {
			u    *User
			want string
		}{{owner, c.owner}, {member, c.member}, {other, c.other}} {
			err := u.u.CanRead(filepath.Join(dir, c.name))
			var d *Denied
			switch {
			case u.want == ok && err != nil:
				t.Errorf("%s, %s: %v", c.name, u.u.Name, err)
			case u.want == ok:
			case !errors.As(err, &d):
				t.Errorf("%s, %s: %v, want denied", c.name, u.u.Name, err)
			case u.want == denied && (d.Dir || d.Path != filepath.Clean(filepath.Join(dir, c.name))):
				t.Errorf("%s, %s: denied at %s (folder %v), want the file", c.name, u.u.Name, d.Path, d.Dir)
			case u.want != denied && (!d.Dir || d.Path != filepath.Join(dir, u.want)):
				t.Errorf("%s, %s: denied at %s (folder %v), want the folder %s", c.name, u.u.Name, d.Path, d.Dir, u.want)
			}
		}
	}

	err := member.CanRead(filepath.Join(dir, "closed", "key"))
	want := filepath.Join(dir, "closed") + ": user member (groups member, shared) cannot enter it: mode 0700, owner "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(chgrp member "+filepath.Join(dir, "closed")+"; chmod g+x "+filepath.Join(dir, "closed")+")") {
		t.Errorf("message: %v\nwant %s…", err, want)
	}
	if err := owner.CanRead(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	if err := owner.CanRead(filepath.Join(dir, "loop")); !errors.Is(err, unix.ELOOP) {
		t.Errorf("a link to itself: %v", err)
	}
}

// TestCanReadACL: a POSIX ACL's named user and named group, limited by
// its mask, decide where the mode alone would deny or grant.
func TestCanReadACL(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	me, gid := uint32(os.Getuid()), uint32(os.Getgid())
	named := &User{Name: "named", UID: me + 4242, GIDs: []uint32{gid + 4242}}
	inGroup := &User{Name: "in-group", UID: me + 4343, GIDs: []uint32{gid + 4343, gid + 4444}}
	other := &User{Name: "other", UID: me + 4545, GIDs: []uint32{gid + 4545}}
	type entry struct {
		tag, perm uint16
		id        uint32
	}
	const none = 0xffffffff
	setACL := func(name string, mask uint16) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		b := binary.LittleEndian.AppendUint32(nil, 2)
		for _, e := range []entry{{aclUserObj, 6, none}, {aclUser, 4, named.UID}, {aclGroupObj, 0, none}, {aclGroup, 4, gid + 4444}, {aclMask, mask, none}, {aclOther, 0, none}} {
			b = binary.LittleEndian.AppendUint16(b, e.tag)
			b = binary.LittleEndian.AppendUint16(b, e.perm)
			b = binary.LittleEndian.AppendUint32(b, e.id)
		}
		err := unix.Setxattr(path, "system.posix_acl_access", b, 0)
		testenv.Need(t, !errors.Is(err, unix.ENOTSUP), "the temporary folder's file system has no POSIX ACLs: set TMPDIR to a folder on ext4 (or a tmpfs with ACLs)")
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	open := setACL("acl-r", 4)
	masked := setACL("acl-masked", 0)
	for _, c := range []struct {
		u      *User
		path   string
		reads  bool
		aclMsg bool
	}{
		{named, open, true, false}, {inGroup, open, true, false}, {other, open, false, true},
		{named, masked, false, true}, {inGroup, masked, false, true},
	} {
		err := c.u.CanRead(c.path)
		if c.reads != (err == nil) {
			t.Errorf("%s, %s: %v", c.u.Name, filepath.Base(c.path), err)
		}
		if c.aclMsg && (err == nil || !strings.Contains(err.Error(), "and an ACL (getfacl shows it)")) {
			t.Errorf("%s, %s: %v, want the ACL named", c.u.Name, filepath.Base(c.path), err)
		}
		if os.Geteuid() == 0 {
			likeTheKernel(t, c.u, c.path)
		}
	}
}

// TestLookup: a user by name or by uid, with its primary group first.
func TestLookup(t *testing.T) {
	u, err := Lookup("root")
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != 0 || len(u.GIDs) == 0 || u.GIDs[0] != 0 || u.Groups[0] != "root" {
		t.Errorf("root: %+v", u)
	}
	if u, err := Lookup("0"); err != nil || u.Name != "root" {
		t.Errorf("uid 0: %+v %v", u, err)
	}
	if _, err := Lookup("no-such-user-tapwatch-test"); err == nil {
		t.Error("a user that is not there: no error")
	}
}
