package directory

import (
	"time"

	"github.com/qqbridge/qqbridge/metrics"
)

// WithMetrics makes every Refresh record its duration, outcome and, on
// success, the sizes of the lists (qqbridge_directory_*).
func WithMetrics(m *metrics.Metrics) Option {
	return func(dir *Directory) { dir.metrics = m }
}

// observeRefresh records one Refresh that began at start and ended with err.
func (d *Directory) observeRefresh(start time.Time, err error) {
	s := d.snapshot()
	d.metrics.DirectoryRefreshed(time.Since(start), err, len(s.friends), len(s.groups), len(s.discussions))
}
