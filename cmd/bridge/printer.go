package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/qqbridge/qqbridge/schema"
)

// printer writes NATS messages readably: a head line with the time, the subject and
// the headers of interest, a summary line decoded from the body, and (with body)
// the body itself as JSON, whatever its codec. A QR code message is drawn. It is
// safe for concurrent use.
type printer struct {
	mu       sync.Mutex
	w        io.Writer
	subjects schema.Subjects
	body     bool // print the decoded body under the summary
	drawQR   bool // draw QR images in the terminal
}

// print writes one message.
func (p *printer) print(m *nats.Msg) {
	var sb strings.Builder
	sb.WriteString(time.Now().Format("15:04:05.000"))
	sb.WriteByte(' ')
	sb.WriteString(m.Subject)
	// The headers of interest, in this order, when present.
	for _, name := range []string{schema.HeaderContentType, schema.HeaderCEType, schema.HeaderCEID, schema.HeaderMsgID, headerExpiresAt} {
		v := schema.HeaderValue(m.Header, name)
		if v == "" {
			continue
		}
		if name == schema.HeaderMsgID && v == schema.HeaderValue(m.Header, schema.HeaderCEID) {
			continue // the same id twice says nothing
		}
		if name == schema.HeaderContentType && v == schema.ContentTypeJSON {
			continue // the default
		}
		fmt.Fprintf(&sb, "  %s=%s", strings.ToLower(name), v)
	}
	sb.WriteByte('\n')
	summary, extra := p.summarize(m)
	if summary != "" {
		sb.WriteString("    ")
		sb.WriteString(summary)
		sb.WriteByte('\n')
	}
	sb.WriteString(extra)
	if p.body && !p.isQR(m.Subject) {
		if js := bodyJSON(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data); js != "" {
			sb.WriteString("    ")
			sb.WriteString(js)
			sb.WriteByte('\n')
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, sb.String())
}

func (p *printer) isQR(subject string) bool { return subject == p.subjects.SessionQR() }

// summarize decodes the body by subject into one readable line, plus extra lines
// (a drawn QR code).
func (p *printer) summarize(m *nats.Msg) (string, string) {
	s := p.subjects
	ct := schema.HeaderValue(m.Header, schema.HeaderContentType)
	prefix := s.Prefix() + "."
	switch {
	case strings.HasPrefix(m.Subject, prefix+"in."):
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		if err != nil {
			return "undecodable event: " + err.Error(), ""
		}
		return eventSummary(ev), ""
	case m.Subject == s.SessionState():
		var st schema.SessionState
		if err := schema.Decode(ct, m.Data, &st); err != nil {
			return "undecodable state: " + err.Error(), ""
		}
		return stateSummary(&st), ""
	case m.Subject == s.SessionQR():
		qr, err := decodeQR(m)
		if err != nil {
			return "undecodable QR: " + err.Error(), ""
		}
		line := fmt.Sprintf("QR code to scan (%d bytes PNG, expires %s)", len(qr.PNG), qr.ExpiresAt.Local().Format(time.TimeOnly))
		if !p.drawQR {
			return line, ""
		}
		drawn, err := renderQR(qr.PNG)
		if err != nil {
			return line + ": " + err.Error(), ""
		}
		return line, indent(drawn, "    ")
	case strings.HasPrefix(m.Subject, prefix+"result."):
		var r schema.Result
		if err := schema.Decode(ct, m.Data, &r); err != nil {
			return "undecodable result: " + err.Error(), ""
		}
		return resultSummary(&r), ""
	case strings.HasPrefix(m.Subject, prefix+"out."), strings.HasPrefix(m.Subject, prefix+"api.send."):
		req, err := schema.DecodeRequest(ct, m.Data)
		if err != nil {
			return err.Error(), ""
		}
		return requestSummary(req), ""
	}
	return "", ""
}

// Headers of a QR message published as the PNG itself (the session manager's
// default): Content-Type image/png and expires_at (RFC 3339).
const (
	contentTypePNG  = "image/png"
	headerExpiresAt = "expires_at"
)

// decodeQR reads a QR message: the PNG itself (Content-Type image/png, header
// expires_at) or a schema.QR in JSON or msgpack.
func decodeQR(m *nats.Msg) (*schema.QR, error) {
	ct := schema.HeaderValue(m.Header, schema.HeaderContentType)
	if strings.HasPrefix(ct, contentTypePNG) {
		qr := &schema.QR{PNG: m.Data}
		if v := schema.HeaderValue(m.Header, headerExpiresAt); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, fmt.Errorf("header %s: %w", headerExpiresAt, err)
			}
			qr.ExpiresAt = t
		}
		return qr, nil
	}
	var qr schema.QR
	if err := schema.Decode(ct, m.Data, &qr); err != nil {
		return nil, err
	}
	return &qr, nil
}

// eventSummary is one line for an inbound event: where, who, what.
func eventSummary(e *schema.Event) string {
	var sb strings.Builder
	sb.WriteString(e.Type)
	switch {
	case e.Group != nil:
		fmt.Fprintf(&sb, " in group %s", named(e.Group.Name, e.Group.Number, "gid", e.Group.GID))
	case e.Discuss != nil:
		fmt.Fprintf(&sb, " in discussion %s", named(e.Discuss.Name, 0, "did", e.Discuss.DID))
	}
	if e.Sess != nil {
		fmt.Fprintf(&sb, " via group %s", named("", e.Sess.ViaNumber, "gid", e.Sess.ViaGID))
	}
	if e.From != nil {
		name := e.From.Card
		if name == "" {
			name = e.From.Nick
		}
		fmt.Fprintf(&sb, " from %s", named(name, e.From.QQ, "uin", e.From.UIN))
	}
	if e.Status != nil {
		fmt.Fprintf(&sb, ": %s is %s", named("", e.Status.QQ, "uin", e.Status.UIN), e.Status.Status)
	}
	if e.Kick != nil {
		fmt.Fprintf(&sb, ": %s", e.Kick.Reason)
	}
	if e.Image != nil {
		fmt.Fprintf(&sb, ": %s", imageText(e.Image))
	}
	if e.File != nil {
		fmt.Fprintf(&sb, ": %s", fileText(e.File))
	}
	switch {
	case len(e.Segments) > 0:
		fmt.Fprintf(&sb, ": %s", segmentsText(e.Segments))
	case e.Text != "":
		fmt.Fprintf(&sb, ": %s", e.Text)
	case e.Picture:
		sb.WriteString(": [picture]")
	}
	return sb.String()
}

// named prints "Name (123456)", or the session number with its kind when the
// stable one is unknown: "Name (uin3785096088)".
func named(name string, stable int64, kind string, session int64) string {
	id := strconv.FormatInt(stable, 10)
	if stable == 0 {
		id = kind + strconv.FormatInt(session, 10)
	}
	if name == "" {
		return id
	}
	return name + " (" + id + ")"
}

// segmentsText joins text segments and shows faces as [face N].
func segmentsText(segs []schema.Segment) string {
	var sb strings.Builder
	for _, s := range segs {
		if s.Type == schema.SegmentFace {
			fmt.Fprintf(&sb, "[face %d]", s.Face)
			continue
		}
		if s.Type == schema.SegmentImage && s.Image != nil {
			fmt.Fprintf(&sb, "[image %s]", imageText(s.Image))
			continue
		}
		sb.WriteString(s.Text)
	}
	return sb.String()
}

// imageText describes a picture: "pending image/…/1", "stored image/…/1
// (1234 bytes image/png)", "failed image/…/1: too_large".
func imageText(img *schema.Image) string {
	s := img.State + " " + img.Ref
	switch {
	case img.State == schema.ImageFailed:
		s += ": " + img.Reason
	case img.Size > 0:
		s += fmt.Sprintf(" (%d bytes %s)", img.Size, img.ContentType)
	}
	return s
}

// fileText describes a file offer or a received file.
func fileText(f *schema.File) string {
	if f.Ref != "" {
		return fmt.Sprintf("%q stored as %s (%d bytes %s)", f.Name, f.Ref, f.Size, f.ContentType)
	}
	s := fmt.Sprintf("%q offered; accept with qq.api.file.accept {\"offer\":%q}", f.Name, f.Offer)
	if !f.Expires.IsZero() {
		s += " before " + f.Expires.Local().Format(time.TimeOnly)
	}
	return s
}

func stateSummary(st *schema.SessionState) string {
	s := "state " + string(st.State)
	if st.Account != 0 {
		s += fmt.Sprintf(" (account %d)", st.Account)
	}
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	return s
}

func resultSummary(r *schema.Result) string {
	id := r.ID
	if id == "" {
		id = "(no id)"
	}
	if r.OK {
		return fmt.Sprintf("sent %s %s in %d part(s)", r.Kind, id, r.Parts)
	}
	if r.Error == nil {
		return fmt.Sprintf("failed %s %s", r.Kind, id)
	}
	s := fmt.Sprintf("failed %s %s: %s", r.Kind, id, r.Error.Error())
	if r.Error.Retcode != 0 {
		s += fmt.Sprintf(" (retcode %d)", r.Error.Retcode)
	}
	return s
}

func requestSummary(r *schema.Request) string {
	var to []string
	for _, t := range []struct {
		name string
		v    int64
	}{{"qq", r.To.QQ}, {"group", r.To.Group}, {"uin", r.To.UIN}, {"gid", r.To.GID}, {"did", r.To.DID}} {
		if t.v != 0 {
			to = append(to, fmt.Sprintf("%s %d", t.name, t.v))
		}
	}
	text := r.Text
	if len(r.Segments) > 0 {
		text = segmentsText(r.Segments)
	}
	s := "send to " + strings.Join(to, ", ") + ": " + text
	if r.ID != "" {
		s += "  (id " + r.ID + ")"
	}
	return s
}

// bodyJSON renders a body as one line of JSON: JSON as it is (compacted), msgpack
// decoded, anything else quoted when it is text, else its size.
func bodyJSON(contentType string, data []byte) string {
	if len(data) == 0 {
		return ""
	}
	c, err := schema.CodecFor(contentType)
	if err == nil && c.ContentType() == schema.ContentTypeMsgpack {
		var v any
		if err := msgpack.Unmarshal(data, &v); err == nil {
			if js, err := json.Marshal(jsonable(v)); err == nil {
				return string(js)
			}
		}
		return fmt.Sprintf("(%d bytes of undecodable msgpack)", len(data))
	}
	var buf bytes.Buffer
	if json.Compact(&buf, data) == nil {
		return buf.String()
	}
	if utf8.Valid(data) {
		return strconv.Quote(string(data))
	}
	return fmt.Sprintf("(%d bytes)", len(data))
}

// jsonable converts what msgpack decodes (maps keyed by any, byte slices,
// timestamps) into values encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// indent puts prefix in front of every line of s.
func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var sb strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		sb.WriteString(prefix)
		sb.WriteString(l)
	}
	return sb.String()
}
