package schema

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SegmentImage is the type of a picture segment of a received message. Its
// encoded form is {"type":"image","image":{…}} (Image). Pictures can be
// received only: a send request with an image segment is invalid (SmartQQ
// has no call that sends a picture).
const SegmentImage = "image"

// Event types of pictures and files (see docs/events.md, "Pictures and
// files").
const (
	// TypeMediaStored follows a message with an image segment once the
	// picture is in the media bucket; Image has the object.
	TypeMediaStored = "media.stored"
	// TypeMediaFailed follows a message with an image segment whose picture
	// could not be stored; Image.Reason says why.
	TypeMediaFailed = "media.failed"
	// TypeFileOffer: a friend offers a file; File has the offer to accept or
	// refuse.
	TypeFileOffer = "file.offer"
	// TypeFileReceived: an accepted file is in the media bucket; File has the
	// object.
	TypeFileReceived = "file.received"
)

// Image states (Image.State).
const (
	ImagePending = "pending" // the picture is being fetched; a media.stored or media.failed event follows
	ImageStored  = "stored"  // the picture is in the media bucket under Ref
	ImageFailed  = "failed"  // the picture could not be stored; Reason says why
)

// Reasons of a failed picture or file (Image.Reason, and the error codes of
// file.accept).
const (
	// ReasonTooLarge: the picture or file is larger than the bridge's limit
	// (--media-max-bytes); it was not stored.
	ReasonTooLarge = "too_large"
	// ReasonUnsupported: a group or discussion picture (cface); SmartQQ
	// serves those to no web client.
	ReasonUnsupported = "unsupported"
	// ReasonUnavailable: QQ refused to serve it (unknown, expired, or from a
	// session that ended).
	ReasonUnavailable = "unavailable"
	// ReasonFetchFailed: every attempt failed (timeouts, HTTP errors, no
	// live session in time).
	ReasonFetchFailed = "fetch_failed"
	// ReasonOfferExpired: the file offer expired or was answered already.
	ReasonOfferExpired = "offer_expired"
)

// Image is the picture of an image segment (Segment.Image) and the payload of
// media.stored and media.failed events (Event.Image). Ref is the object name
// in Bucket (the media bucket, Subjects.MediaBucket), set from the start,
// while still pending. Size, ContentType and SHA256 (hex) describe the stored
// object; Reason is set when State is "failed"; Event, on media.* events
// only, is the id of the message event whose segment this is.
type Image struct {
	State       string `json:"state" msgpack:"state"`
	Ref         string `json:"ref" msgpack:"ref"`
	Bucket      string `json:"bucket,omitempty" msgpack:"bucket,omitempty"`
	Size        int64  `json:"size,omitempty" msgpack:"size,omitempty"`
	ContentType string `json:"content_type,omitempty" msgpack:"content_type,omitempty"`
	SHA256      string `json:"sha256,omitempty" msgpack:"sha256,omitempty"`
	Reason      string `json:"reason,omitempty" msgpack:"reason,omitempty"`
	Event       string `json:"event,omitempty" msgpack:"event,omitempty"`
}

// ImageSegment returns an image segment.
func ImageSegment(img Image) Segment { return Segment{Type: SegmentImage, Image: &img} }

// ImageRef is the object name of picture n (1-based, in message order) of
// the message event eventID: "image/<event id>/<n>", for example
// "image/931996776:friend:2/1". The same message gives the same names, so a
// repeated fetch overwrites the same object.
func ImageRef(eventID string, n int) string {
	return "image/" + eventID + "/" + strconv.Itoa(n)
}

// File is the payload of file.offer and file.received events (Event.File).
// Offer is the token to accept or refuse the offer with
// (<prefix>.api.file.accept|refuse, FileRequest); Name is the file name;
// Expires is when the offer is expected to lapse (the bridge's
// --file-offer-ttl after the offer; QQ does not say). On file.received, Ref,
// Bucket, Size, ContentType and SHA256 describe the stored object.
type File struct {
	Offer       string    `json:"offer" msgpack:"offer"`
	Name        string    `json:"name" msgpack:"name"`
	Expires     time.Time `json:"expires,omitzero" msgpack:"expires,omitempty"`
	Ref         string    `json:"ref,omitempty" msgpack:"ref,omitempty"`
	Bucket      string    `json:"bucket,omitempty" msgpack:"bucket,omitempty"`
	Size        int64     `json:"size,omitempty" msgpack:"size,omitempty"`
	ContentType string    `json:"content_type,omitempty" msgpack:"content_type,omitempty"`
	SHA256      string    `json:"sha256,omitempty" msgpack:"sha256,omitempty"`
}

// FileRequest is the body of <prefix>.api.file.accept and
// <prefix>.api.file.refuse: the Offer token of a file.offer event.
type FileRequest struct {
	Offer string `json:"offer" msgpack:"offer"`
}

// FileOffer is what an offer token (File.Offer) carries: what QQ needs to
// answer the offer. FromUIN is a session number: an offer does not outlive
// the login it came in.
type FileOffer struct {
	LCID    int64
	FromUIN int64
	Name    string
}

// maxFileName bounds the file name an offer token carries.
const maxFileName = 255

// Token returns the offer token: "<lcid>.<from uin>.<name, base64url>".
func (o FileOffer) Token() string {
	return strconv.FormatInt(o.LCID, 10) + "." + strconv.FormatInt(o.FromUIN, 10) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(o.Name))
}

// ParseFileOffer decodes an offer token (FileOffer.Token). The error wraps
// ErrInvalidRequest.
func ParseFileOffer(token string) (FileOffer, error) {
	if len(token) > 2*maxFileName+64 {
		return FileOffer{}, fmt.Errorf("%w: offer: longer than %d bytes", ErrInvalidRequest, 2*maxFileName+64)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !isPositiveNumber(parts[0]) || !isPositiveNumber(parts[1]) {
		return FileOffer{}, fmt.Errorf("%w: offer %q: want the offer of a file.offer event", ErrInvalidRequest, truncate(token, 64))
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(name) == 0 || len(name) > maxFileName || !utf8.Valid(name) {
		return FileOffer{}, fmt.Errorf("%w: offer %q: bad file name", ErrInvalidRequest, truncate(token, 64))
	}
	lcid, _ := strconv.ParseInt(parts[0], 10, 64)
	uin, _ := strconv.ParseInt(parts[1], 10, 64)
	return FileOffer{LCID: lcid, FromUIN: uin, Name: string(name)}, nil
}

// FileRef is the object name of an accepted file: "file/<account>/<lcid>/<name>"
// with the name's '/' and control characters replaced by '_'.
func FileRef(account int64, o FileOffer) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r < ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, o.Name)
	return "file/" + strconv.FormatInt(account, 10) + "/" + strconv.FormatInt(o.LCID, 10) + "/" + name
}

// MediaBucket returns the name of the Object Store bucket of pictures and
// files: the prefix with "_media", e.g. qq_media.
func (s Subjects) MediaBucket() string { return s.nameBase() + "_media" }

// MediaJobs returns the subject of the bridge's internal picture jobs:
// <prefix>.media.jobs (stream StreamMediaJobs; not for consumers).
func (s Subjects) MediaJobs() string { return s.Prefix() + ".media.jobs" }

// StreamMediaJobs returns the name of the work-queue stream of picture jobs,
// e.g. QQ_MEDIA_JOBS.
func (s Subjects) StreamMediaJobs() string { return strings.ToUpper(s.nameBase()) + "_MEDIA_JOBS" }

// FileOfferTTL is how long after it was made a file offer is expected to
// stay open: QQ does not say; qqsim's default, 60 s, is the estimate
// File.Expires is made with.
const FileOfferTTL = 60 * time.Second

// FileOfferEvent is the file.offer event id of account's offer o from
// contact from (msg_id msgID, made at at; zero = now).
func FileOfferEvent(id string, account, msgID int64, from Contact, o FileOffer, at time.Time) *Event {
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	return &Event{
		ID: id, Type: TypeFileOffer, Time: at, Account: account, MsgID: msgID, From: &from,
		File: &File{Offer: o.Token(), Name: o.Name, Expires: at.Add(FileOfferTTL)},
	}
}
