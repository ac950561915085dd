package twofa

import (
	"fmt"
	"time"
)

// A limit counts events under a key in windows of time, in the store
// (LimitStore, AttemptRequest), so that every process sharing it counts
// together. These functions are the arithmetic every store shares.

// Slot returns the slot of the limit that holds now: it starts at a
// multiple of the slot length (Window/Buckets, or Window for a fixed
// window) since the Unix epoch, floored for times before it too, and is
// kept until end, when the slot leaves the count. Counting at now sums
// the slots of the key that start at from or later. Times are in
// microseconds since the Unix epoch, as stores keep them.
func (h LimitHit) Slot(now time.Time) (start, end, from int64, err error) {
	n := max(h.Buckets, 1)
	w := h.Window.Microseconds()
	slot := w / int64(n)
	if slot <= 0 || w%int64(n) != 0 {
		return 0, 0, 0, fmt.Errorf("limit %q: window %v does not split into %d slots of whole microseconds", h.Key, h.Window, n)
	}
	start = FloorMicros(now.UnixMicro(), slot)
	return start, start + w, start - slot*int64(n-1), nil
}

// FloorMicros returns us rounded down to a multiple of unit, before the
// epoch too.
func FloorMicros(us, unit int64) int64 {
	return us - (us%unit+unit)%unit
}
