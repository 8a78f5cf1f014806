package qqsim

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Pictures and files (seed 002): a contact's picture reaches the client as a content
// item — ["offpic",{"success":1,"file_path":"/<uuid>"}] in friend and temporary chats,
// ["cface",{"name":"{<UUID>}.jpg","file_id":…,"key":…,"server":"ip:port"}] in groups
// and discussions — and a friend's file as a file_message item. The client fetches an
// offpic with get_offpic2 (302 to the picture, slow), takes a file with get_file2 (302
// to the bytes) or refuses it with refuse_file2; an offer older than Config.FileTTL
// answers 102.

// picture is a picture a contact sent.
type picture struct {
	name     string // what the control API called it
	filePath string // offpic file_path
	cface    string // cface name ("{UUID}.jpg")
	fileID   int64
	key      string
	from     int64 // the sender's QQ number
	data     []byte
}

// fileOffer is a file a friend offered.
type fileOffer struct {
	lcid    int64 // session_id on the wire
	name    string
	from    int64 // the sender's QQ number
	data    []byte
	offered time.Time
	msgID   int64
	msgID2  int64
	done    bool // taken or refused
}

// Transfer is one picture fetch or file answer a client made (control API GET
// /_sim/transfers).
type Transfer struct {
	Kind   string    `json:"kind"`   // picture, file
	Action string    `json:"action"` // fetched, refused, expired (the client asked too late), downloaded
	Name   string    `json:"name"`
	From   int64     `json:"from"` // the sender's QQ number
	Time   time.Time `json:"time"`
}

// FileOffer is a file a friend offers the account (control API POST /_sim/files).
type FileOffer struct {
	From int64  `json:"from"` // a friend's QQ number
	Name string `json:"name"` // the file name (guid on the wire)
	Text string `json:"text"` // the file's content; empty: a few bytes of its own
}

// picturePNG draws a small picture whose colour depends on n.
func picturePNG(n int64) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	c := color.RGBA{uint8(n * 53), uint8(n * 97), uint8(n * 31), 255}
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// uuidLocked draws a random UUID-shaped string.
func (s *Server) uuidLocked() string {
	h := secret(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newPictureLocked makes the picture of a message.
func (s *Server) newPictureLocked(name string, from int64) *picture {
	u := s.uuidLocked()
	p := &picture{
		name: name, from: from,
		filePath: "/" + u,
		cface:    "{" + strings.ToUpper(u) + "}.jpg",
		fileID:   1_000_000_000 + s.rng.Int64N(3_000_000_000),
		key:      secret(8),
		data:     picturePNG(int64(len(s.pictures) + 1)),
	}
	s.pictures[p.filePath] = p
	return p
}

// pictureItem renders a picture segment: offpic for friend and temporary chats, cface
// for groups and discussions.
func pictureItem(kind string, p *picture) []any {
	if kind == "group" || kind == "discuss" {
		return []any{"cface", map[string]any{"name": p.cface, "file_id": p.fileID, "key": p.key, "server": "127.0.0.1:8000"}}
	}
	return []any{"offpic", map[string]any{"success": 1, "file_path": p.filePath}}
}

// OfferFile makes a friend offer a file: a file_message item the next poll delivers.
// It returns the offer's lcid (session_id).
func (s *Server) OfferFile(o FileOffer) (int64, error) {
	if _, ok := s.world.friend(o.From); !ok {
		return 0, fmt.Errorf("%w: %d is not a friend", ErrUnknownContact, o.From)
	}
	if strings.TrimSpace(o.Name) == "" || strings.ContainsAny(o.Name, "/\\") {
		return 0, fmt.Errorf("%w: a file needs a plain name", ErrBadSay)
	}
	data := []byte(o.Text)
	if len(data) == 0 {
		data = []byte("qqsim file " + o.Name + "\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastLCID += 1 + s.rng.Int64N(7)
	f := &fileOffer{lcid: s.lastLCID, name: o.Name, from: o.From, data: data, offered: time.Now()}
	f.msgID = s.msgIDLocked()
	f.msgID2 = 100000 + s.rng.Int64N(900000)
	s.files[f.lcid] = f
	s.pending = append(s.pending, pendingItem{file: f})
	s.count("files_offered")
	s.notifyLocked()
	return f.lcid, nil
}

// fileItemLocked renders a file offer with the session numbers n.
func (s *Server) fileItemLocked(f *fileOffer, n *numbers) pollItem {
	return pollItem{"file_message", map[string]any{
		"msg_id":      f.msgID,
		"msg_id2":     f.msgID2,
		"from_uin":    s.uinOf(n, f.from),
		"to_uin":      s.world.Self.QQ,
		"msg_type":    9,
		"reply_ip":    176498075,
		"type":        129,
		"mode":        "recv",
		"session_id":  f.lcid,
		"name":        f.name,
		"inet_ip":     0,
		"time":        f.offered.Unix(),
		"cancel_type": 1,
	}}
}

// Transfers returns the picture fetches and file answers so far, oldest first.
func (s *Server) Transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transfer{}, s.transfers...)
}

func (s *Server) transferLocked(kind, action, name string, from int64) {
	s.transfers = append(s.transfers, Transfer{Kind: kind, Action: action, Name: name, From: from, Time: time.Now()})
	s.count(kind + "_" + action)
}

// slowEndpoints wait Config.TransferLatency before answering, as the picture and file
// servers of the era did (10–45 s).
var slowEndpoints = map[string]bool{"get_offpic2": true, "get_file2": true}

// wait sleeps d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// blobBase is where the 302s of get_offpic2 and get_file2 point: this simulator.
func (s *Server) blobBase(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// getOffpic2 answers a friend picture: 302 to the picture's bytes.
func (s *Server) getOffpic2(c *call) any {
	path, _ := c.str("file_path")
	fuin, _ := c.num("f_uin")
	p := s.pictures[path]
	if p == nil {
		return rc{rcMissingData}
	}
	if qq, ok := s.qqOf(c.sess.num, fuin); !ok || qq != p.from {
		return rc{rcMissingData}
	}
	tok := secret(16)
	s.blobs[tok] = blob{data: p.data, kind: "picture", name: p.name, from: p.from, ctype: "image/png"}
	s.transferLocked("picture", "fetched", p.name, p.from)
	loc := s.blobBase(c.r) + "/blob/offpic?rkey=" + tok
	return reply(func(w http.ResponseWriter) {
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	})
}

// offerLocked finds the offer of a get_file2 / refuse_file2: lcid and to (the sender's
// uin) must match. ok is false for an unknown one; expired for one older than FileTTL
// (or answered before).
func (s *Server) offerLocked(c *call) (f *fileOffer, expired, ok bool) {
	lcid, ok1 := c.num("lcid")
	to, ok2 := c.num("to")
	if !ok1 || !ok2 {
		return nil, false, false
	}
	f = s.files[lcid]
	if f == nil {
		return nil, false, false
	}
	if qq, found := s.qqOf(c.sess.num, to); !found || qq != f.from {
		return nil, false, false
	}
	return f, f.done || c.now.Sub(f.offered) >= s.cfg.FileTTL, true
}

// getFile2 accepts a file offer: 302 to the bytes; 102 when the offer expired.
func (s *Server) getFile2(c *call) any {
	f, expired, ok := s.offerLocked(c)
	if !ok {
		return rc{rcMissingData}
	}
	if g, _ := c.str("guid"); g != f.name {
		return rc{rcMissingData}
	}
	if expired {
		s.transferLocked("file", "expired", f.name, f.from)
		return rcMsg{Retcode: rcPollEmpty}
	}
	f.done = true
	tok := secret(16)
	s.blobs[tok] = blob{data: f.data, kind: "file", name: f.name, from: f.from, ctype: "application/octet-stream"}
	s.transferLocked("file", "fetched", f.name, f.from)
	loc := s.blobBase(c.r) + "/blob/file/" + strconv.FormatInt(f.lcid, 10) + "/" + f.name + "?psessionid=" + c.sess.id + "&rkey=" + tok
	return reply(func(w http.ResponseWriter) {
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	})
}

// refuseFile2 refuses a file offer: {"retcode":0,"result":"ok"}; 102 when it expired.
func (s *Server) refuseFile2(c *call) any {
	f, expired, ok := s.offerLocked(c)
	if !ok {
		return rc{rcMissingData}
	}
	if expired {
		s.transferLocked("file", "expired", f.name, f.from)
		return rcMsg{Retcode: rcPollEmpty}
	}
	f.done = true
	s.transferLocked("file", "refused", f.name, f.from)
	return result{Result: "ok"}
}

// blob is what a 302 of get_offpic2 or get_file2 leads to; each works once.
type blob struct {
	data       []byte
	kind, name string
	from       int64
	ctype      string
}

// serveBlob serves the picture and file servers' side: /blob/… with the rkey of a
// 302, once.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("rkey")
	s.mu.Lock()
	b, ok := s.blobs[tok]
	if ok {
		delete(s.blobs, tok)
		s.transferLocked(b.kind, "downloaded", b.name, b.from)
	}
	s.mu.Unlock()
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", b.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.data)))
	_, _ = w.Write(b.data)
}
