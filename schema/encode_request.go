package schema

// EncodeRequest checks the request r for kind (Request.Validate, and an id is
// required), encodes it with c and returns the body with the headers a
// publisher sets: Content-Type (c's content type) and Nats-Msg-Id (r.ID), so
// that JetStream drops a repeated publish of the same request and the bridge
// sends it once. The header map converts to nats.Header as it is; publish on
// the target subject (Subjects.OutTo), where requests to different targets
// are sent at the same time:
//
//	body, h, err := schema.EncodeRequest(schema.JSON(), kind, req)
//	subject, err := subjects.OutTo(kind, req.To)
//	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: body, Header: nats.Header(h)})
//
// Choose the id once per message meant to be sent once (for a reply, the
// event's id and a suffix of your own) and publish the same id again on a
// retry. Errors wrap ErrInvalidRequest (a *ValidationError names the field).
func EncodeRequest(c Codec, kind Kind, r *Request) ([]byte, map[string][]string, error) {
	if c == nil {
		c = JSON()
	}
	if r == nil {
		return nil, nil, invalid("body", "no request")
	}
	if err := r.Validate(kind); err != nil {
		return nil, nil, err
	}
	if r.ID == "" {
		return nil, nil, invalid("id", "missing: EncodeRequest sets Nats-Msg-Id from it, so that a retried publish is sent once")
	}
	body, err := c.Marshal(r)
	if err != nil {
		return nil, nil, err
	}
	if len(body) > MaxRequestBytes {
		return nil, nil, invalid("body", "%d bytes encoded, at most %d", len(body), MaxRequestBytes)
	}
	return body, map[string][]string{
		HeaderContentType: {c.ContentType()},
		HeaderMsgID:       {r.ID},
	}, nil
}
