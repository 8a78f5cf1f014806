package onebot

import (
	"testing"

	"github.com/qqbridge/qqbridge/schema"
)

// TestFromSchemaImage: a delivered picture (an image segment) becomes an
// image segment whose file is the object name.
func TestFromSchemaImage(t *testing.T) {
	ref := schema.ImageRef("1:friend:5", 1)
	e := &schema.Event{Type: schema.TypeMessageFriend, Text: "look",
		Segments: []schema.Segment{schema.TextSegment("look"), schema.ImageSegment(schema.Image{State: schema.ImagePending, Ref: ref})}}
	if got, want := FormatCQ(FromSchema(e)), "look[CQ:image,file="+EscapeCQParam(ref)+"]"; got != want {
		t.Errorf("CQ %q, want %q", got, want)
	}
}
