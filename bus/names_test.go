package bus_test

import (
	"testing"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/session"
)

// TestNamesAgree pins the internal names to those the components use today,
// so that a component that changes its own copy fails here until both agree
// (the components are to take them from bus).
func TestNamesAgree(t *testing.T) {
	for _, c := range []struct{ what, bus, component string }{
		{"saved-session key", bus.SessionKeySaved, session.KeySession},
		{"login-request key", bus.SessionKeyLogin, session.KeyLogin},
		{"egress consumer", bus.EgressConsumer, egress.DefaultConsumer},
	} {
		if c.bus != c.component {
			t.Errorf("%s: bus says %q, the component uses %q", c.what, c.bus, c.component)
		}
	}
}
