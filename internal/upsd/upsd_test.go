package upsd

import (
	"testing"
	"time"

	"gate/internal/nut"
)

// What each client is shown as ups.status: the source's LB and FSD are
// masked from a secondary until its group's turn; FSD is shown group by
// group.
func TestStatus(t *testing.T) {
	d := &Daemon{userGroup: map[string]string{"compute-1": "compute", "ceph-1": "ceph"}, started: map[string]bool{}}
	for _, tc := range []struct {
		started []string
		user    string
		source  string
		want    string
	}{
		{nil, "ceph-1", "OB LB", "OB"},
		{nil, "ceph-1", "FSD OB LB", "OB"}, // the source's FSD is the plan's to show
		{nil, "admin", "OB LB", "OB LB"},
		{nil, "", "FSD OL", "OL"},
		{[]string{"compute"}, "compute-1", "OB LB", "FSD OB LB"},
		{[]string{"compute"}, "ceph-1", "OB LB", "OB"},
		{[]string{"compute"}, "admin", "OB DISCHRG", "FSD OB DISCHRG"},
		{[]string{"compute", "ceph"}, "ceph-1", "OL CHRG", "FSD OL CHRG"},
	} {
		d.started = map[string]bool{}
		for _, g := range tc.started {
			d.started[g] = true
		}
		if got := d.status(tc.user, tc.source); got != tc.want {
			t.Errorf("groups %v started, %q sees %q as %q, want %q", tc.started, tc.user, tc.source, got, tc.want)
		}
	}
}

// Old data is stale (ERR DATA-STALE) only on line power with no plan
// running: on battery, or during a plan, secondaries keep the last data.
func TestStale(t *testing.T) {
	old := time.Now().Add(-StaleAfter - time.Second)
	for _, tc := range []struct {
		name               string
		onBattery, running bool
		at                 time.Time
		want               bool
	}{
		{"fresh", false, false, time.Now(), false},
		{"old on line power", false, false, old, true},
		{"old on battery", true, false, old, false},
		{"old during a plan", false, true, old, false},
	} {
		d := &Daemon{snap: nut.Snapshot{Vars: map[string]string{"ups.status": "OB"}}, lastData: tc.at, onBattery: tc.onBattery, running: tc.running}
		if got := d.data().Stale; got != tc.want {
			t.Errorf("%s: stale %v, want %v", tc.name, got, tc.want)
		}
	}
}
