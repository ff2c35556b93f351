// Command kmoddeps prints, in load order, the kernel modules that the
// named modules need, themselves included: one path a line, relative to
// the module tree. It reads the "depends=" field of each module's .modinfo
// section, so it works on another architecture's modules and needs neither
// depmod nor a modules.dep (Debian's kernel packages ship none: depmod
// makes it at install time).
//
//	kmoddeps /lib/modules/VERSION bcm2835_wdt
//
// Compressed modules (.ko.xz, .ko.zst, ...) are refused: the HIL kernel's
// are plain .ko.
package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func modName(path string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(path), ".ko"), "-", "_")
}

func depends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "depends="); ok {
			var deps []string
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					deps = append(deps, strings.ReplaceAll(d, "-", "_"))
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}

func run(root string, want []string) error {
	paths := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), ".ko.") {
			return fmt.Errorf("%s: compressed modules are not supported", p)
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".ko") {
			rel, _ := filepath.Rel(root, p)
			paths[modName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return err
	}
	state := map[string]int{} // 1: being visited, 2: printed
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("dependency loop through %s", name)
		case 2:
			return nil
		}
		rel, ok := paths[name]
		if !ok {
			if from == "" {
				return fmt.Errorf("no module %s under %s", name, root)
			}
			return fmt.Errorf("no module %s (needed by %s) under %s", name, from, root)
		}
		state[name] = 1
		deps, err := depends(filepath.Join(root, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		fmt.Println(rel)
		return nil
	}
	for _, w := range want {
		if err := visit(strings.ReplaceAll(w, "-", "_"), ""); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: kmoddeps MODULE_TREE MODULE...")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w (is the kernel package unpacked?)", err)
		}
		fmt.Fprintln(os.Stderr, "kmoddeps:", err)
		os.Exit(1)
	}
}
