package postgres

import (
	"context"
	"math"
)

// OpenVersion is Open bringing the schema to version only (0: the newest),
// for tests of upgrades.
func OpenVersion(ctx context.Context, dsn string, version int) (*Store, error) {
	if version == 0 {
		version = math.MaxInt
	}
	return open(ctx, dsn, version)
}
