package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// identity is a resolved user: whom a process runs as.
type identity struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string   // "" when the user has no passwd entry
	Name     string
}

// passwdEntry and groupEntry are lines of /etc/passwd and /etc/group.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// maxAccountFile bounds how much of /etc/passwd or /etc/group is read.
const maxAccountFile = 8 << 20

// readAccounts reads one of the account files below root; a missing file is
// empty.
func readAccounts(root, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(root, "etc", name))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxAccountFile))
}

// parsePasswd parses /etc/passwd, skipping malformed lines.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	}
	return out
}

// parseGroup parses /etc/group, skipping malformed lines.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: uint32(gid), members: members})
	}
	return out
}

// resolveUser resolves spec ("", name, uid, uid:gid, name:group) against the
// account files below root. "" is the agent's own uid and gid. A user given
// by number needs no passwd entry; a name must have one.
func resolveUser(root, spec string) (identity, error) {
	pwData, err := readAccounts(root, "passwd")
	if err != nil {
		return identity{}, fmt.Errorf("read passwd: %w", err)
	}
	grData, err := readAccounts(root, "group")
	if err != nil {
		return identity{}, fmt.Errorf("read group: %w", err)
	}
	return resolveUserIn(parsePasswd(pwData), parseGroup(grData), spec, uint32(os.Getuid()), uint32(os.Getgid()))
}

func resolveUserIn(pw []passwdEntry, gr []groupEntry, spec string, selfUID, selfGID uint32) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	id := identity{UID: selfUID, GID: selfGID}
	var entry *passwdEntry
	switch {
	case userPart == "" && hasGroup:
		return identity{}, fmt.Errorf("%w: user %q has an empty user part", errdefs.ErrInvalidArgument, spec)
	case userPart == "":
		entry = findPasswd(pw, func(e *passwdEntry) bool { return e.uid == selfUID })
	case isNumber(userPart):
		n, err := strconv.ParseUint(userPart, 10, 32)
		if err != nil {
			return identity{}, fmt.Errorf("%w: bad uid %q", errdefs.ErrInvalidArgument, userPart)
		}
		id.UID = uint32(n)
		entry = findPasswd(pw, func(e *passwdEntry) bool { return e.uid == id.UID })
		id.GID = id.UID // no passwd entry: the group with the same number
	default:
		entry = findPasswd(pw, func(e *passwdEntry) bool { return e.name == userPart })
		if entry == nil {
			return identity{}, fmt.Errorf("%w: no user %q in the sandbox's /etc/passwd", errdefs.ErrNotFound, userPart)
		}
		id.UID = entry.uid
	}
	if entry != nil {
		id.GID, id.Home, id.Name = entry.gid, entry.home, entry.name
	}
	if hasGroup {
		switch {
		case groupPart == "":
			return identity{}, fmt.Errorf("%w: user %q has an empty group part", errdefs.ErrInvalidArgument, spec)
		case isNumber(groupPart):
			n, err := strconv.ParseUint(groupPart, 10, 32)
			if err != nil {
				return identity{}, fmt.Errorf("%w: bad gid %q", errdefs.ErrInvalidArgument, groupPart)
			}
			id.GID = uint32(n)
		default:
			g := findGroup(gr, groupPart)
			if g == nil {
				return identity{}, fmt.Errorf("%w: no group %q in the sandbox's /etc/group", errdefs.ErrNotFound, groupPart)
			}
			id.GID = g.gid
		}
	}
	if userPart == "" && !hasGroup {
		id.GID = selfGID
	}
	// Supplementary groups: the primary group and every group listing the
	// user by name.
	id.Groups = []uint32{id.GID}
	if id.Name != "" {
		for _, g := range gr {
			if g.gid != id.GID && contains(g.members, id.Name) {
				id.Groups = append(id.Groups, g.gid)
			}
		}
	}
	return id, nil
}

func findPasswd(pw []passwdEntry, match func(*passwdEntry) bool) *passwdEntry {
	for i := range pw {
		if match(&pw[i]) {
			return &pw[i]
		}
	}
	return nil
}

func findGroup(gr []groupEntry, name string) *groupEntry {
	for i := range gr {
		if gr[i].name == name {
			return &gr[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
