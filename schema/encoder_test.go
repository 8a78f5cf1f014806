package schema

import (
	"bytes"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestEncoderSameAsEncode: an Encoder writes every event shape, in both
// codecs, as Event.Encode does, body and headers, also for events of other
// accounts and times in turn.
func TestEncoderSameAsEncode(t *testing.T) {
	events := sampleEvents(t)
	now := &Event{ID: "x", Type: TypeStatusBuddy, Time: time.Now(), Account: 5, Status: &Status{UIN: 1}}
	other := &Event{ID: "y", Type: SystemType("tips"), Time: time.Unix(1, 0).In(time.FixedZone("z", 3600)), Account: 6, SystemKind: "tips"}
	for _, c := range []Codec{JSON(), Msgpack()} {
		x := NewEncoder(c)
		for round := range 2 {
			for _, name := range append(sortedNames(events), "now", "other") {
				e := events[name]
				switch name {
				case "now":
					e = now
				case "other":
					e = other
				}
				data, h, err := x.Encode(e)
				if err != nil {
					t.Fatal(err)
				}
				wantData, wantH, err := e.Encode(c)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(data, wantData) || !reflect.DeepEqual(h, wantH) {
					t.Errorf("%s %s round %d:\n got %s %v\nwant %s %v", c.ContentType(), name, round, data, h, wantData, wantH)
				}
				// Each header has its own value: setting one leaves the others.
				h[HeaderCEID][0] = "changed"
				if h[HeaderMsgID][0] != e.ID {
					t.Fatalf("%s: the headers share a value", name)
				}
				h["Nats-Expected-Last-Msg-Id"] = []string{"p"}
				if len(h) != HeaderCount+1 {
					t.Fatalf("%d headers", len(h))
				}
			}
		}
	}
}

// TestEncoderConcurrent: an Encoder is safe for concurrent use (run with
// -race): events of two accounts and many times encoded at once come out
// as Event.Encode writes them.
func TestEncoderConcurrent(t *testing.T) {
	x := NewEncoder(JSON())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				e := &Event{ID: "id", Type: TypeMessageFriend, Time: time.Unix(int64(i/10), 0), Account: int64(g % 2), Text: "t"}
				data, h, err := x.Encode(e)
				wantData, wantH, _ := e.Encode(JSON())
				if err != nil || !bytes.Equal(data, wantData) || !reflect.DeepEqual(h, wantH) {
					t.Errorf("got %s %v %v\nwant %s %v", data, h, err, wantData, wantH)
					return
				}
			}
		})
	}
	wg.Wait()
}
