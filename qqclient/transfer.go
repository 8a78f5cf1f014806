package qqclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrOfferExpired: a file offer can no longer be taken or refused (retcode 102 from
// get_file2 or refuse_file2).
var ErrOfferExpired = errors.New("qqclient: file offer expired")

// DefaultTransferTimeout bounds Picture and AcceptFile when the caller's context has no
// deadline: the picture and file servers took 10–45 s (seed 002).
const DefaultTransferTimeout = 90 * time.Second

// PictureKind is the content item a picture came as.
type PictureKind string

// Picture kinds.
const (
	PictureOffPic PictureKind = "offpic" // a friend's (or temporary chat's) picture: fetch it with Picture
	PictureCFace  PictureKind = "cface"  // a group or discussion picture
)

// Picture is a picture of a received message. Index is the number of Segments before it.
type Picture struct {
	Kind  PictureKind
	Index int
	// offpic
	FilePath string // file_path, for Picture
	Success  bool
	// cface
	Name   string // "{UUID}.jpg"
	FileID int64
	Key    string
	Server string // "ip:port"
}

// decodePicture decodes the value of an offpic or cface item; ok is false when it is not
// an object of the expected fields.
func decodePicture(kind string, raw json.RawMessage) (Picture, bool) {
	if !isObject(raw) {
		return Picture{}, false
	}
	var w struct {
		Success  flexInt    `json:"success"`
		FilePath flexString `json:"file_path"`
		Name     flexString `json:"name"`
		FileID   flexInt    `json:"file_id"`
		Key      flexString `json:"key"`
		Server   flexString `json:"server"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Picture{}, false
	}
	if kind == string(PictureOffPic) {
		return Picture{Kind: PictureOffPic, FilePath: string(w.FilePath), Success: w.Success == 1}, true
	}
	return Picture{Kind: PictureCFace, Name: string(w.Name), FileID: int64(w.FileID), Key: string(w.Key), Server: string(w.Server)}, true
}

// FileOffer is a file a friend offers (a file_message item in mode "recv").
type FileOffer struct {
	MsgID   int64
	FromUIN int64  // the friend's uin: to of get_file2 and refuse_file2
	LCID    int64  // session_id: lcid of get_file2 and refuse_file2
	Name    string // the file name: guid of get_file2
	Time    time.Time
}

// decodeFileNotice decodes a file_message value: the Notice, with File set for an offer.
func decodeFileNotice(raw json.RawMessage) (*Notice, error) {
	n, err := decodeNotice(raw)
	if err != nil {
		return nil, err
	}
	var w struct {
		MsgID     flexInt    `json:"msg_id"`
		Mode      flexString `json:"mode"`
		SessionID flexInt    `json:"session_id"`
		Name      flexString `json:"name"`
		Time      flexInt    `json:"time"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	if w.Mode != "recv" {
		return n, nil
	}
	if w.SessionID == 0 || w.Name == "" || n.FromUIN == 0 {
		return nil, errors.New("file offer without session_id, name or from_uin")
	}
	f := &FileOffer{MsgID: int64(w.MsgID), FromUIN: n.FromUIN, LCID: int64(w.SessionID), Name: string(w.Name)}
	if w.Time != 0 {
		f.Time = time.Unix(int64(w.Time), 0).UTC()
	}
	n.File = f
	return n, nil
}

// Picture fetches a friend's picture (an offpic Picture of a message from fromUIN):
// get_offpic2, whose 302 leads to the bytes. The picture server is slow; without a
// deadline in ctx the call waits up to DefaultTransferTimeout.
func (c *Client) Picture(ctx context.Context, fromUIN int64, filePath string) ([]byte, error) {
	const op = "get_offpic2"
	if filePath == "" || fromUIN == 0 {
		return nil, fmt.Errorf("%w: %s: no file_path or sender", ErrBadRequest, op)
	}
	cr, err := c.current(op)
	if err != nil {
		return nil, err
	}
	return c.transfer(ctx, &call{
		op: op, host: hostD1, path: "/channel/get_offpic2", timeout: DefaultTransferTimeout,
		query: qv("file_path", filePath, "f_uin", itoa(fromUIN), "clientid", itoa(ClientID), "psessionid", cr.psessionid),
	})
}

// AcceptFile takes a file offer: get_file2, whose 302 leads to the bytes. An offer that
// expired (or was answered already) returns ErrOfferExpired. Without a deadline in ctx
// the call waits up to DefaultTransferTimeout.
func (c *Client) AcceptFile(ctx context.Context, f FileOffer) ([]byte, error) {
	const op = "get_file2"
	if f.LCID == 0 || f.FromUIN == 0 || f.Name == "" {
		return nil, fmt.Errorf("%w: %s: incomplete offer", ErrBadRequest, op)
	}
	cr, err := c.current(op)
	if err != nil {
		return nil, err
	}
	return c.transfer(ctx, &call{
		op: op, host: hostD1, path: "/channel/get_file2", timeout: DefaultTransferTimeout,
		query: qv("lcid", itoa(f.LCID), "guid", f.Name, "to", itoa(f.FromUIN), "psessionid", cr.psessionid,
			"count", "1", "time", tParam(), "clientid", itoa(ClientID)),
	})
}

// RefuseFile refuses a file offer (refuse_file2). An offer that expired returns
// ErrOfferExpired.
func (c *Client) RefuseFile(ctx context.Context, f FileOffer) error {
	const op = "refuse_file2"
	if f.LCID == 0 || f.FromUIN == 0 {
		return fmt.Errorf("%w: %s: incomplete offer", ErrBadRequest, op)
	}
	cr, err := c.current(op)
	if err != nil {
		return err
	}
	_, err = c.jsonCall(ctx, &call{
		op: op, host: hostD1, path: "/channel/refuse_file2",
		query: qv("to", itoa(f.FromUIN), "lcid", itoa(f.LCID), "psessionid", cr.psessionid,
			"clientid", itoa(ClientID), "t", tParam()),
	})
	return offerError(err)
}

// offerError makes a 102 of the file calls ErrOfferExpired.
func offerError(err error) error {
	var re *RetcodeError
	if errors.As(err, &re) && re.Retcode == 102 {
		return &RetcodeError{Op: re.Op, Retcode: re.Retcode, Err: ErrOfferExpired}
	}
	return err
}

// transfer makes a call that answers 302 to the bytes (or a JSON retcode), and fetches
// them.
func (c *Client) transfer(ctx context.Context, k *call) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.timeout)
		defer cancel()
	}
	a, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	switch a.status {
	case http.StatusFound, http.StatusMovedPermanently, http.StatusSeeOther, http.StatusTemporaryRedirect:
	case http.StatusOK:
		// A JSON answer: an error code (103, 102…), or an unexpected success.
		_, err := answerResult(k.op, a)
		if err == nil {
			err = protocolError(k.op, "answer is neither a redirect nor an error")
		}
		return nil, offerError(err)
	default:
		return nil, &HTTPError{Op: k.op, StatusCode: a.status}
	}
	loc, err := c.target(k).Parse(a.header.Get("Location"))
	if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") || loc.Host == "" {
		return nil, protocolError(k.op, "redirect without a usable Location")
	}
	b, err := c.do(ctx, &call{op: k.op, rawURL: loc, referer: refererD1, timeout: k.timeout})
	if err != nil {
		return nil, err
	}
	if b.status != http.StatusOK {
		return nil, &HTTPError{Op: k.op, StatusCode: b.status}
	}
	if len(b.body) == 0 || (bytes.HasPrefix(bytes.TrimSpace(b.body), []byte("{\"retcode\"")) && strings.Contains(b.header.Get("Content-Type"), "json")) {
		return nil, protocolError(k.op, "no content behind the redirect")
	}
	return b.body, nil
}
