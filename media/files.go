package media

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Accept takes the file of offer (the token of a file.offer event) through a
// live session, stores it in the media bucket under schema.FileRef and
// publishes file.received on <prefix>.in.file.uin<sender's uin>; it returns
// the File of that event. The transfer may take long (QQ's file server took
// up to 45 s); ctx bounds it, and without a deadline FetchTimeout does.
// Errors: schema.ErrInvalidRequest for a bad token, ErrNoSession,
// ErrOfferExpired, ErrTooLarge (the file is gone from QQ: it serves a file
// once), ErrUnavailable (QQ refused), ErrFetch.
func (m *Media) Accept(ctx context.Context, offer string) (*schema.File, error) {
	o, err := schema.ParseFileOffer(offer)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.FetchTimeout)
		defer cancel()
	}
	s, err := m.cfg.Sessions.Await(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSession, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	data, err := m.cfg.Client.AcceptFile(fctx, qqclient.FileOffer{LCID: o.LCID, FromUIN: o.FromUIN, Name: o.Name})
	if err != nil {
		return nil, m.transferError(s.Lost, "get_file2", err)
	}
	if int64(len(data)) > m.cfg.MaxBytes {
		m.log.Warn().Int("size", len(data)).Int64("limit", m.cfg.MaxBytes).Msg("accepted file over the size limit; not stored")
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), m.cfg.MaxBytes)
	}
	ref := schema.FileRef(s.Account, o)
	size, ct, sum, err := m.put(ctx, ref, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	f := &schema.File{Offer: offer, Name: o.Name, Ref: ref, Bucket: m.cfg.Subjects.MediaBucket(), Size: size, ContentType: ct, SHA256: sum}
	from := schema.SessionNumberID(schema.IDPrefixUIN, o.FromUIN)
	subject, err := m.cfg.Subjects.In(schema.KindFile, from)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	e := &schema.Event{ID: ref, Type: schema.TypeFileReceived, Time: time.Now().UTC(), Account: s.Account,
		From: &schema.Contact{UIN: o.FromUIN}, File: f}
	data, h, err := e.Encode(m.codec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	if err := m.publish(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header(h)}); err != nil {
		return nil, fmt.Errorf("%w: stored as %s, but file.received not published: %v", ErrFetch, ref, err)
	}
	m.log.Info().Str("ref", ref).Int64("size", size).Msg("file received")
	return f, nil
}

// Refuse refuses offer (the token of a file.offer event) through a live
// session. Errors as Accept's.
func (m *Media) Refuse(ctx context.Context, offer string) error {
	o, err := schema.ParseFileOffer(offer)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.FetchTimeout)
		defer cancel()
	}
	s, err := m.cfg.Sessions.Await(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoSession, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	if err := m.cfg.Client.RefuseFile(fctx, qqclient.FileOffer{LCID: o.LCID, FromUIN: o.FromUIN, Name: o.Name}); err != nil {
		return m.transferError(s.Lost, "refuse_file2", err)
	}
	m.log.Info().Int64("lcid", o.LCID).Msg("file refused")
	return nil
}

// transferError classifies an error of a file call.
func (m *Media) transferError(lost func(error), op string, err error) error {
	var re *qqclient.RetcodeError
	switch {
	case errors.Is(err, qqclient.ErrOfferExpired):
		return ErrOfferExpired
	case errors.Is(err, qqclient.ErrSessionLost):
		lost(err)
		return fmt.Errorf("%w: %s: the session was lost", ErrNoSession, op)
	case errors.As(err, &re), errors.Is(err, qqclient.ErrBadRequest):
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrFetch, op, err)
}
