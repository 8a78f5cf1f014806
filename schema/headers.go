package schema

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Header names set on event messages. The ce-* headers are the CloudEvents
// 1.0 binary content mode attributes; Nats-Msg-Id lets JetStream drop a
// repeated event.
const (
	HeaderContentType   = "Content-Type"
	HeaderMsgID         = "Nats-Msg-Id"
	HeaderCESpecVersion = "ce-specversion"
	HeaderCEID          = "ce-id"
	HeaderCEType        = "ce-type"
	HeaderCESource      = "ce-source"
	HeaderCETime        = "ce-time"
)

// CESpecVersion is the CloudEvents version of the ce-* headers.
const CESpecVersion = "1.0"

// CETypePrefix is put in front of Event.Type to form ce-type.
const CETypePrefix = "qq."

// Headers returns the CloudEvents attributes of the event and its
// Nats-Msg-Id, one value per name: ce-specversion "1.0", ce-id and
// Nats-Msg-Id the event id, ce-type "qq." + type, ce-source
// "qqbridge/<account>", ce-time the event time in RFC 3339 (UTC). The body's
// Content-Type is not among them, as the event does not know its codec; use
// SetHeaders or Encode for a complete set.
func (e *Event) Headers() map[string]string {
	h := make(map[string]string, 6)
	e.eachHeader(func(k, v string) { h[k] = v })
	return h
}

// eachHeader calls set for each header of Headers.
func (e *Event) eachHeader(set func(k, v string)) {
	set(HeaderCESpecVersion, CESpecVersion)
	set(HeaderCEID, e.ID)
	set(HeaderCEType, ceType(e.Type))
	set(HeaderCESource, e.Source())
	set(HeaderCETime, e.Time.UTC().Format(time.RFC3339Nano))
	set(HeaderMsgID, e.ID)
}

// ceType is the ce-type of an event of type t, CETypePrefix + t, without a
// new string for the inbound types.
func ceType(t string) string {
	switch t {
	case TypeMessageFriend:
		return CETypePrefix + TypeMessageFriend
	case TypeMessageGroup:
		return CETypePrefix + TypeMessageGroup
	case TypeMessageDiscuss:
		return CETypePrefix + TypeMessageDiscuss
	case TypeMessageSess:
		return CETypePrefix + TypeMessageSess
	case TypeStatusBuddy:
		return CETypePrefix + TypeStatusBuddy
	case TypeInputNotify:
		return CETypePrefix + TypeInputNotify
	case TypeSystemKick:
		return CETypePrefix + TypeSystemKick
	case TypeFileOffer:
		return CETypePrefix + TypeFileOffer
	case TypeMediaStored:
		return CETypePrefix + TypeMediaStored
	case TypeMediaFailed:
		return CETypePrefix + TypeMediaFailed
	}
	return CETypePrefix + t
}

// Source returns the CloudEvents source of the event: "qqbridge/<account>".
func (e *Event) Source() string { return "qqbridge/" + strconv.FormatInt(e.Account, 10) }

// SetHeaders sets the event's headers (see Headers) and Content-Type in h,
// replacing values of the same names. h may be a nats.Header.
func (e *Event) SetHeaders(h map[string][]string, contentType string) {
	// One backing array for all seven values.
	vals := make([]string, 0, 7)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	e.eachHeader(set)
	set(HeaderContentType, contentType)
}

// Encode encodes the event with c and returns the body and the complete
// header set (SetHeaders). The header map converts to nats.Header as it is.
func (e *Event) Encode(c Codec) ([]byte, map[string][]string, error) {
	data, err := c.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("schema: encode event %s: %w", e.ID, err)
	}
	h := make(map[string][]string, 7)
	e.SetHeaders(h, c.ContentType())
	return data, h, nil
}

// An Encoder encodes events as Event.Encode does, and makes the header
// values that repeat from one event to the next once: ce-source for the
// account of the events, ce-time for events of the same time (QQ gives
// message times to the second). It is safe for concurrent use.
type Encoder struct {
	codec  Codec
	source atomic.Pointer[sourceValue]
	time   atomic.Pointer[timeValue]
}

type sourceValue struct {
	account int64
	source  string
}

type timeValue struct {
	t time.Time
	s string
}

// NewEncoder returns an Encoder for codec c (nil: JSON).
func NewEncoder(c Codec) *Encoder {
	if c == nil {
		c = JSON()
	}
	return &Encoder{codec: c}
}

// Codec returns the encoder's codec.
func (x *Encoder) Codec() Codec { return x.codec }

// HeaderCount is the number of headers Encode sets; a map made with room
// for one more takes Nats-Expected-Last-Msg-Id too.
const HeaderCount = 7

// Encode encodes e as Event.Encode does: the body and the complete header
// set, in a map with room for one more header.
func (x *Encoder) Encode(e *Event) ([]byte, map[string][]string, error) {
	data, err := x.codec.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("schema: encode event %s: %w", e.ID, err)
	}
	vals := [...]string{
		CESpecVersion, e.ID, ceType(e.Type), x.sourceOf(e.Account), x.timeOf(e.Time), e.ID, x.codec.ContentType(),
	}
	h := make(map[string][]string, HeaderCount+1)
	all := vals[:] // escapes: one array for the seven values
	for k, name := range [...]string{
		HeaderCESpecVersion, HeaderCEID, HeaderCEType, HeaderCESource, HeaderCETime, HeaderMsgID, HeaderContentType,
	} {
		h[name] = all[k : k+1 : k+1]
	}
	return data, h, nil
}

// sourceOf is the ce-source of account's events.
func (x *Encoder) sourceOf(account int64) string {
	if v := x.source.Load(); v != nil && v.account == account {
		return v.source
	}
	v := &sourceValue{account: account, source: "qqbridge/" + strconv.FormatInt(account, 10)}
	x.source.Store(v)
	return v.source
}

// timeOf is the ce-time of an event of time t. Only whole seconds (the
// times of QQ's messages) are kept for the next event.
func (x *Encoder) timeOf(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() != 0 {
		return t.Format(time.RFC3339Nano)
	}
	if v := x.time.Load(); v != nil && v.t.Equal(t) {
		return v.s
	}
	v := &timeValue{t: t, s: t.Format(time.RFC3339Nano)}
	x.time.Store(v)
	return v.s
}

// HeaderValue returns the first value of name in h, matching the name
// exactly first and then case-insensitively (NATS keeps header names as
// sent). It returns "" when the header is absent.
func HeaderValue(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0]
		}
	}
	return ""
}

// DecodeEvent decodes an event message: it picks the codec from the
// Content-Type header (absent means JSON), decodes the body and checks the
// version. Fields it does not know are ignored, so consumers keep working
// when fields are added. Errors match ErrUnsupportedContentType,
// ErrInvalidEvent or ErrUnsupportedVersion. The returned time is in UTC; an
// empty segment list or raw value is returned as nil.
func DecodeEvent(header map[string][]string, data []byte) (*Event, error) {
	c, err := CodecFor(HeaderValue(header, HeaderContentType))
	if err != nil {
		return nil, err
	}
	var e Event
	if err := c.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", ErrInvalidEvent, c.ContentType(), err)
	}
	if e.V != Version {
		return nil, fmt.Errorf("%w: event v %d, this package reads v %d", ErrUnsupportedVersion, e.V, Version)
	}
	e.Time = e.Time.UTC()
	if e.File != nil {
		e.File.Expires = e.File.Expires.UTC()
	}
	if len(e.Segments) == 0 {
		e.Segments = nil // "segments":[] and an absent list mean the same
	}
	if len(e.Raw) == 0 {
		e.Raw = nil
	}
	return &e, nil
}
