package sqlite

import "time"

// SetCheckpointing sets how often the checkpointer runs and the WAL size
// at which it starts the WAL over, for stores opened until restore.
func SetCheckpointing(every time.Duration, pages int) (restore func()) {
	e, p := checkpointEvery, restartPages
	checkpointEvery, restartPages = every, pages
	return func() { checkpointEvery, restartPages = e, p }
}
