package labelled_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/tapwatch/tapwatch/internal/labelled"
)

// A QUT attack log, in UTC+10, scored against two alerts in capture time
// (UTC): one during the episode, one an hour later.
func ExampleScoreEpisodes() {
	log := "2016-10-10 17:54:58.056444 reconnaissance 192.168.10.222 START\n" +
		"2016-10-10 17:55:02.128405 reconnaissance 192.168.10.222 END\n"
	eps, err := labelled.ParseAttackLog(strings.NewReader(log), "example.attack-log.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	at := time.Date(2016, 10, 10, 7, 55, 0, 0, time.UTC)
	alerts := []labelled.Alert{
		{ID: 1, Rule: "request-flood", First: at, Last: at},
		{ID: 2, Rule: "malformed", First: at.Add(time.Hour), Last: at.Add(time.Hour)},
	}
	s := labelled.ScoreEpisodes(eps, alerts, labelled.ScoreWindow)
	fmt.Println(eps[0].Start, eps[0].Targets)
	fmt.Printf("reconnaissance %d/%d, false alerts %v\n", s.Types["reconnaissance"].Detected, s.Types["reconnaissance"].Episodes, s.FalseByRule)
	// Output:
	// 2016-10-10 07:54:58.056444 +0000 UTC [192.168.10.222]
	// reconnaissance 1/1, false alerts map[malformed:1]
}
