package configs

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeUnits are PostgreSQL's memory units (1024-based, as in
// max_slot_wal_keep_size), so a size here reads like the server setting
// it is compared with.
var sizeUnits = []struct {
	suffix string
	bytes  int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

// ParseSize reads a byte size with PostgreSQL's units: "512MB", "1GB",
// "64kB", "100B" (1 GB = 1024 MB).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<62)/u.bytes {
			break
		}
		return n * u.bytes, nil
	}
	return 0, fmt.Errorf("size %q: want a whole number with a unit such as 512MB or 1GB (B, kB, MB, GB, TB; 1GB = 1024MB)", s)
}

// SlotLagAlert is WAL_SLOT_LAG_ALERT read: the slot lag above which
// wal.slot_lag is raised, either a fraction of the server's
// max_slot_wal_keep_size (Percent, 1 to 100) or a size (Bytes); neither
// (Off) raises no lag alert.
type SlotLagAlert struct {
	Percent float64
	Bytes   int64
}

// Off reports that no lag alert is raised.
func (a SlotLagAlert) Off() bool { return a.Percent == 0 && a.Bytes == 0 }

// ParseSlotLagAlert reads "80%", "1GB" or "off".
func ParseSlotLagAlert(s string) (SlotLagAlert, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return SlotLagAlert{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || n < 1 || n > 100 {
			return SlotLagAlert{}, fmt.Errorf("%q: want a percentage of max_slot_wal_keep_size from 1%% to 100%%, a size such as 1GB, or off", s)
		}
		return SlotLagAlert{Percent: n}, nil
	}
	b, err := ParseSize(s)
	if err != nil || b == 0 {
		return SlotLagAlert{}, fmt.Errorf("%q: want a percentage of max_slot_wal_keep_size such as 80%%, a size such as 1GB, or off", s)
	}
	return SlotLagAlert{Bytes: b}, nil
}
