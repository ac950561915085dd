package sqlite

import (
	"context"
	"time"
)

// SetCheckpointing sets how often the checkpointer runs and the WAL size
// at which it starts the WAL over, for stores opened until restore.
func SetCheckpointing(every time.Duration, pages int) (restore func()) {
	e, p := checkpointEvery, restartPages
	checkpointEvery, restartPages = every, pages
	return func() { checkpointEvery, restartPages = e, p }
}

// OpenVersion is Open bringing the schema to version only (0: the newest),
// for tests of upgrades.
func OpenVersion(ctx context.Context, path string, version int) (*Store, error) {
	if version == 0 {
		version = MigrationVersion
	}
	return open(ctx, path, version)
}
