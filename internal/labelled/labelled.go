// Package labelled reads two public intrusion-detection datasets with
// ground truth, and scores a sensor's alerts against it:
//
//   - QUT 2017 DNP3 (Queensland University of Technology, repository
//     qut-infosec/2017QUT_DNP3): each capture comes with its attack
//     script's log of when each attack episode started and ended
//     (ParseAttackLog). An episode is detected when an alert overlaps
//     its window (ScoreEpisodes).
//   - Lemay CSET'16 Modbus (Antoine Lemay and José M. Fernandez,
//     "Providing SCADA Network Data Sets for Intrusion Detection
//     Research", USENIX CSET 2016): each frame of a capture is labelled
//     attack or normal (ParseLabels), and alerts are scored by the frame
//     that fired them (ScoreFrames).
//
// The datasets live in ../shared/corpus/labelled-attacks, whose README
// describes the files, the labels and the time zone of the logs. They
// are never copied into the repository.
package labelled

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The datasets' folders, and the names of their files.
const (
	QUTDir         = "qut-2017-dnp3"
	LemayDir       = "lemay-modbus-cset16"
	qutLogSuffix   = ".attack-log.txt"
	qutPcapSuffix  = ".ip-arp.pcap"
	lemayLabSuffix = "_labeled.csv"
	lemayPcap      = ".pcap"
)

// QUTCapture is one day of the QUT dataset: a capture and the episodes
// of its attack log.
type QUTCapture struct {
	Name     string // the file name without its suffix: Attacks_attacks_training_frequent
	Family   string // the name's prefix: Attacks, Flooding, Injection, MITM or Control (no attack)
	Pcap     string // path of the capture
	Log      string // path of the attack log
	Episodes []Episode
}

// Quiet reports whether capture time t is outside the window, widened
// by w, of every episode: a stretch to learn normal traffic from.
func (c *QUTCapture) Quiet(t time.Time, w Window) bool {
	for i := range c.Episodes {
		if c.Episodes[i].Overlaps(w, t, t) {
			return false
		}
	}
	return true
}

// LemayCapture is one capture of the Lemay dataset and its frame labels.
type LemayCapture struct {
	Name   string // the capture's file name without .pcap
	Pcap   string // path of the capture
	Labels Labels
}

// Dataset is both datasets, as found in a folder.
type Dataset struct {
	QUT   []QUTCapture
	Lemay []LemayCapture
}

// Load reads both datasets from dir, the labelled-attacks folder: QUT
// from its QUTDir, Lemay from its LemayDir.
func Load(dir string) (*Dataset, error) {
	qut, err := LoadQUT(filepath.Join(dir, QUTDir))
	if err != nil {
		return nil, err
	}
	lemay, err := LoadLemay(filepath.Join(dir, LemayDir))
	if err != nil {
		return nil, err
	}
	return &Dataset{QUT: qut, Lemay: lemay}, nil
}

// LoadQUT reads every attack log of dir (NAME.attack-log.txt) and pairs
// it with its capture (NAME.ip-arp.pcap), in the order of the names. A
// log without its capture, or a capture without its log, is an error.
func LoadQUT(dir string) ([]QUTCapture, error) {
	names, err := pair(dir, qutLogSuffix, qutPcapSuffix)
	if err != nil {
		return nil, err
	}
	var out []QUTCapture
	for _, name := range names {
		c := QUTCapture{Name: name, Family: strings.SplitN(name, "_", 2)[0],
			Pcap: filepath.Join(dir, name+qutPcapSuffix), Log: filepath.Join(dir, name+qutLogSuffix)}
		if c.Episodes, err = readFile(c.Log, ParseAttackLog); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// LoadLemay reads every label file of dir (NAME_labeled.csv) and pairs
// it with its capture (NAME.pcap), in the order of the names. A label
// file without its capture, or a capture without its labels, is an
// error.
func LoadLemay(dir string) ([]LemayCapture, error) {
	names, err := pair(dir, lemayLabSuffix, lemayPcap)
	if err != nil {
		return nil, err
	}
	var out []LemayCapture
	for _, name := range names {
		c := LemayCapture{Name: name, Pcap: filepath.Join(dir, name+lemayPcap)}
		if c.Labels, err = readFile(filepath.Join(dir, name+lemayLabSuffix), ParseLabels); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// pair returns the sorted names NAME of dir's files NAME+labels, and
// checks that each has its NAME+capture and each NAME+capture its
// labels.
func pair(dir, labels, capture string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
	}
	var names []string
	var errs []error
	for _, e := range entries {
		switch n := e.Name(); {
		case strings.HasSuffix(n, labels):
			name := strings.TrimSuffix(n, labels)
			if !have[name+capture] {
				errs = append(errs, fmt.Errorf("%s: no capture %s beside it", filepath.Join(dir, n), name+capture))
				continue
			}
			names = append(names, name)
		case strings.HasSuffix(n, capture) && !have[strings.TrimSuffix(n, capture)+labels]:
			errs = append(errs, fmt.Errorf("%s: no labels %s beside it", filepath.Join(dir, n), strings.TrimSuffix(n, capture)+labels))
		}
	}
	slices.Sort(names)
	return names, errors.Join(errs...)
}
