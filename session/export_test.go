package session

import "github.com/qqbridge/qqbridge/live"

// Reports gives the tests the reports a live.Session makes, with any
// generation number (to check that an older one is ignored).
func (m *Manager) Reports() live.Reports { return reports{m} }
