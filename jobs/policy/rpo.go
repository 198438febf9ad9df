package policy

import "time"

// Age is how old a target's newest good backup (finished at lastSuccess)
// is at now, or, when it has none, how long the target has been watched
// without one (since firstSeen). It is what the RPO is compared with.
func Age(lastSuccess, firstSeen, now time.Time) time.Duration {
	if !lastSuccess.IsZero() {
		return now.Sub(lastSuccess)
	}
	if !firstSeen.IsZero() {
		return now.Sub(firstSeen)
	}
	return 0
}
