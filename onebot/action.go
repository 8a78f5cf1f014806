package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

// Return codes of an action (retcode). 0, 1, 1400, 1401, 1403 and 1404 are
// the spec's; 100–105 are the gateway's for a send or lookup that the bridge
// refused, by qqbridge result code (docs/onebot.md).
const (
	RetOK            = 0
	RetAsync         = 1
	RetBadRequest    = 1400
	RetUnauthorized  = 1401
	RetForbidden     = 1403
	RetNotFound      = 1404
	RetUnknownTarget = 100 // unknown_target, or a member / group / message the gateway does not know
	RetRateLimited   = 101 // rate_limited: nothing was sent, retry later
	RetUnavailable   = 102 // session_unavailable (or no bridge answered): nothing was sent
	RetQQError       = 103 // qq_error
	RetMaybeSent     = 104 // maybe_sent: do not resend
	RetInternal      = 105 // the gateway's own store failed
)

// Response is an action's answer. Data is written as null when there is
// none; Msg and Wording (the reason, for people) are an extension that
// go-cqhttp also writes.
type Response struct {
	Status  string          `json:"status"`
	Retcode int             `json:"retcode"`
	Data    any             `json:"data"`
	Msg     string          `json:"msg,omitempty"`
	Wording string          `json:"wording,omitempty"`
	Echo    json.RawMessage `json:"echo,omitempty"`
}

func ok(data any) Response { return Response{Status: "ok", Retcode: RetOK, Data: data} }

func failed(code int, msg string) Response {
	return Response{Status: "failed", Retcode: code, Msg: msg, Wording: msg}
}

// unsupported answers an action QQ-over-SmartQQ cannot do.
func unsupported(action string) Response {
	return failed(RetNotFound, action+" is not supported: SmartQQ has no such call")
}

type handler func(g *Gateway, ctx context.Context, c call) Response

// call is one action invocation.
type call struct {
	action string
	params Params
	echo   json.RawMessage
	body   []byte // the params as received, for the echo record
}

// actions is the table of supported actions.
var actions = map[string]handler{
	"send_private_msg":        (*Gateway).sendPrivate,
	"send_group_msg":          (*Gateway).sendGroup,
	"send_discuss_msg":        (*Gateway).sendDiscuss,
	"send_msg":                (*Gateway).sendMsg,
	"get_login_info":          (*Gateway).getLoginInfo,
	"get_friend_list":         (*Gateway).getFriendList,
	"get_group_list":          (*Gateway).getGroupList,
	"get_group_info":          (*Gateway).getGroupInfo,
	"get_group_member_list":   (*Gateway).getGroupMemberList,
	"get_group_member_info":   (*Gateway).getGroupMemberInfo,
	"get_msg":                 (*Gateway).getMsg,
	"get_status":              (*Gateway).getStatus,
	"get_version_info":        (*Gateway).getVersionInfo,
	"can_send_image":          func(*Gateway, context.Context, call) Response { return ok(map[string]bool{"yes": false}) },
	"can_send_record":         func(*Gateway, context.Context, call) Response { return ok(map[string]bool{"yes": false}) },
	".handle_quick_operation": (*Gateway).handleQuickOperation,
}

// Unsupported lists the v11 actions the gateway answers with retcode 1404,
// and why (docs/onebot.md repeats it).
var Unsupported = map[string]string{
	"delete_msg":              "SmartQQ cannot recall a message",
	"get_forward_msg":         "SmartQQ has no forwarded messages",
	"send_like":               "SmartQQ has no likes",
	"set_group_kick":          "SmartQQ has no group administration",
	"set_group_ban":           "SmartQQ has no group administration",
	"set_group_anonymous_ban": "SmartQQ has no group administration",
	"set_group_whole_ban":     "SmartQQ has no group administration",
	"set_group_admin":         "SmartQQ has no group administration",
	"set_group_anonymous":     "SmartQQ has no group administration",
	"set_group_card":          "SmartQQ has no group administration",
	"set_group_name":          "SmartQQ has no group administration",
	"set_group_leave":         "SmartQQ cannot leave a group",
	"set_group_special_title": "SmartQQ has no group administration",
	"set_friend_add_request":  "SmartQQ does not deliver friend requests",
	"set_group_add_request":   "SmartQQ does not deliver group requests",
	"get_stranger_info":       "SmartQQ cannot look up strangers",
	"get_group_honor_info":    "SmartQQ has no group honours",
	"get_cookies":             "the bridge never hands out the session's credentials",
	"get_csrf_token":          "the bridge never hands out the session's credentials",
	"get_credentials":         "the bridge never hands out the session's credentials",
	"get_record":              "SmartQQ strips voice messages",
	"get_image":               "SmartQQ strips pictures",
	"set_restart":             "the gateway is stateless; restart its process instead",
	"clean_cache":             "the gateway keeps no cache",
}

// Supported reports whether the gateway implements action (without the
// _async / _rate_limited suffix).
func Supported(action string) bool {
	_, ok := actions[baseAction(action)]
	return ok
}

func baseAction(action string) string {
	a, _ := cutSuffix(action)
	return a
}

func cutSuffix(action string) (string, string) {
	for _, s := range []string{"_async", "_rate_limited"} {
		if a, ok := strings.CutSuffix(action, s); ok {
			return a, s
		}
	}
	return action, ""
}

// Call runs an action and returns its response (with echo set). The
// _async suffix answers {"status":"async","retcode":1} at once and runs the
// action in the background; _rate_limited does the same through a queue
// that runs one such action per Config.RateLimitInterval.
func (g *Gateway) Call(ctx context.Context, action string, params Params, echo json.RawMessage) Response {
	r := g.call(ctx, action, params, echo)
	r.Echo = echo
	return r
}

func (g *Gateway) call(ctx context.Context, action string, params Params, echo json.RawMessage) Response {
	if params == nil {
		params = Params{}
	}
	body, _ := json.Marshal(params)
	base, suffix := cutSuffix(action)
	h, found := actions[base]
	if !found {
		if why, known := Unsupported[base]; known {
			return failed(RetNotFound, base+" is not supported: "+why)
		}
		return failed(RetNotFound, "unknown action "+strconv.Quote(truncate(action, 64)))
	}
	c := call{action: base, params: params, echo: echo, body: body}
	run := func(ctx context.Context) Response {
		ctx, cancel := context.WithTimeout(ctx, g.cfg.ActionTimeout)
		defer cancel()
		return h(g, ctx, c)
	}
	switch suffix {
	case "_async":
		bg := g.background()
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			r := run(bg)
			if r.Status != "ok" {
				g.log.Info().Str("action", base).Int("retcode", r.Retcode).Str("reason", r.Msg).Msg("async action failed")
			}
		}()
		return Response{Status: "async", Retcode: RetAsync}
	case "_rate_limited":
		bg := g.background()
		select {
		case g.rateQueue <- func() { run(bg) }:
			return Response{Status: "async", Retcode: RetAsync}
		default:
			return failed(RetRateLimited, "the rate-limited queue is full")
		}
	}
	return run(ctx)
}

// target decoding

func (g *Gateway) isSession(ctx context.Context, prefix string, n int64) bool {
	_, _, err := g.store.Get(ctx, prefix+"."+strconv.FormatInt(n, 10))
	return err == nil
}

func (g *Gateway) personTarget(ctx context.Context, user int64) schema.Target {
	if g.isSession(ctx, "uin", user) {
		return schema.Target{UIN: user}
	}
	return schema.Target{QQ: user}
}

func (g *Gateway) groupTarget(ctx context.Context, group int64) schema.Target {
	if g.isSession(ctx, "gid", group) {
		return schema.Target{GID: group}
	}
	return schema.Target{Group: group}
}

// message reads "message" and "auto_escape".
func (c call) message() ([]schema.Segment, []Segment, error) {
	esc, err := c.params.Bool("auto_escape")
	if err != nil {
		return nil, nil, err
	}
	raw, has := c.params.raw("message")
	if !has {
		return nil, nil, &ParamError{"message", "missing"}
	}
	segs, err := DecodeMessage(raw, esc)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToSchema(segs)
	return out, segs, err
}

func paramFailure(err error) Response {
	var pe *ParamError
	if errors.As(err, &pe) || errors.Is(err, ErrCQ) || errors.Is(err, ErrUnsupportedSegment) || errors.Is(err, ErrEmptyMessage) {
		return failed(RetBadRequest, err.Error())
	}
	return failed(RetBadRequest, err.Error())
}

func (g *Gateway) sendPrivate(ctx context.Context, c call) Response {
	user, err := c.params.NeedInt64("user_id")
	if err != nil {
		return paramFailure(err)
	}
	group, _, err := c.params.Int64("group_id")
	if err != nil {
		return paramFailure(err)
	}
	return g.sendTo(ctx, c, "private", user, group)
}

func (g *Gateway) sendGroup(ctx context.Context, c call) Response {
	group, err := c.params.NeedInt64("group_id")
	if err != nil {
		return paramFailure(err)
	}
	return g.sendTo(ctx, c, "group", 0, group)
}

func (g *Gateway) sendDiscuss(ctx context.Context, c call) Response {
	did, err := c.params.NeedInt64("discuss_id")
	if err != nil {
		return paramFailure(err)
	}
	return g.sendTo(ctx, c, "discuss", 0, did)
}

func (g *Gateway) sendMsg(ctx context.Context, c call) Response {
	mt := c.params.String("message_type")
	if mt == "" {
		switch {
		case c.params.Has("discuss_id"):
			mt = "discuss"
		case c.params.Has("group_id") && !c.params.Has("user_id"):
			mt = "group"
		case c.params.Has("user_id"):
			mt = "private"
		default:
			return failed(RetBadRequest, "send_msg needs message_type, or user_id, group_id or discuss_id")
		}
	}
	switch mt {
	case "private":
		return g.sendPrivate(ctx, c)
	case "group":
		return g.sendGroup(ctx, c)
	case "discuss":
		return g.sendDiscuss(ctx, c)
	}
	return failed(RetBadRequest, "message_type "+strconv.Quote(truncate(mt, 32))+": want private, group or discuss")
}

// sendTo sends the call's message: private to user (through group when
// given: a temporary chat), group to group, discuss to the discussion
// number in group.
func (g *Gateway) sendTo(ctx context.Context, c call, messageType string, user, group int64) Response {
	segs, obSegs, err := c.message()
	if err != nil {
		return paramFailure(err)
	}
	id, err := RequestID(ctx, g.store, c.echo, c.action, c.body, g.cfg.EchoWindow, time.Now())
	if err != nil {
		return failed(RetInternal, "store: "+err.Error())
	}
	return g.deliver(ctx, id, messageType, user, group, segs, obSegs)
}

// deliver sends through the bridge with request id id and answers with the
// message_id of the sent message.
func (g *Gateway) deliver(ctx context.Context, id, messageType string, user, group int64, segs []schema.Segment, obSegs []Segment) Response {
	req := &schema.Request{ID: id, Segments: segs}
	var kind schema.Kind
	switch messageType {
	case "private":
		kind, req.To = schema.KindFriend, g.personTarget(ctx, user)
		if group != 0 {
			kind = schema.KindSess
			gt := g.groupTarget(ctx, group)
			req.To.Group, req.To.GID = gt.Group, gt.GID
		}
	case "group":
		kind, req.To = schema.KindGroup, g.groupTarget(ctx, group)
	case "discuss":
		kind, req.To = schema.KindDiscuss, schema.Target{DID: group}
	}
	res, err := g.backend.Send(ctx, kind, req)
	if err != nil {
		return failed(RetUnavailable, "no bridge answered: "+err.Error())
	}
	if res.Error != nil && res.Error.Code == schema.CodeUnknownTarget && kind == schema.KindFriend {
		// Not a friend: a member met in a temporary chat is reached through
		// the group it came through.
		if b, _, err := g.store.Get(ctx, "sess."+strconv.FormatInt(user, 10)); err == nil {
			if via, err := strconv.ParseInt(string(b), 10, 64); err == nil {
				return g.deliver(ctx, id+"-sess", messageType, user, via, segs, obSegs)
			}
		}
	}
	if res.Error != nil {
		return failed(retcodeOf(res.Error.Code), res.Error.Error())
	}
	ref := MsgRef{Ref: "sent:" + id, Time: time.Now().Unix(), MessageType: messageType, UserID: g.SelfID(), Message: obSegs}
	switch messageType {
	case "group":
		ref.GroupID = group
	case "discuss":
		ref.DiscussID = group
	}
	mid, err := MessageIDOf(ctx, g.store, ref)
	if err != nil {
		return failed(RetInternal, "sent, but the message_id could not be recorded: "+err.Error())
	}
	return ok(map[string]int32{"message_id": mid})
}

// retcodeOf maps a qqbridge result code to the gateway's retcode.
func retcodeOf(c schema.ErrorCode) int {
	switch c {
	case schema.CodeInvalidRequest:
		return RetBadRequest
	case schema.CodeUnknownTarget:
		return RetUnknownTarget
	case schema.CodeRateLimited:
		return RetRateLimited
	case schema.CodeSessionUnavailable:
		return RetUnavailable
	case schema.CodeMaybeSent:
		return RetMaybeSent
	}
	return RetQQError
}

func (g *Gateway) getLoginInfo(ctx context.Context, _ call) Response {
	g.refreshState(ctx)
	id := g.SelfID()
	if id == 0 {
		return failed(RetUnavailable, "the bridge has not logged in yet")
	}
	return ok(map[string]any{"user_id": id, "nickname": strconv.FormatInt(id, 10)})
}

type friendInfo struct {
	UserID   int64  `json:"user_id"`
	Nickname string `json:"nickname"`
	Remark   string `json:"remark"`
}

func (g *Gateway) getFriendList(ctx context.Context, _ call) Response {
	fs, err := g.backend.Friends(ctx)
	if err != nil {
		return failed(RetUnavailable, "contacts: "+err.Error())
	}
	out := make([]friendInfo, 0, len(fs))
	for _, f := range fs {
		id := f.QQ
		if id == 0 {
			id = f.UIN
			_ = g.store.Put(ctx, "uin."+strconv.FormatInt(id, 10), []byte("1"))
		}
		out = append(out, friendInfo{UserID: id, Nickname: f.Nick, Remark: f.Card})
	}
	return ok(out)
}

type groupInfo struct {
	GroupID        int64  `json:"group_id"`
	GroupName      string `json:"group_name"`
	MemberCount    int32  `json:"member_count"`
	MaxMemberCount int32  `json:"max_member_count"`
}

func (g *Gateway) groups(ctx context.Context) ([]groupInfo, error) {
	gs, err := g.backend.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]groupInfo, 0, len(gs))
	for _, gr := range gs {
		id := gr.Number
		if id == 0 {
			id = gr.GID
			_ = g.store.Put(ctx, "gid."+strconv.FormatInt(id, 10), []byte("1"))
		}
		out = append(out, groupInfo{GroupID: id, GroupName: gr.Name})
	}
	return out, nil
}

func (g *Gateway) getGroupList(ctx context.Context, _ call) Response {
	gs, err := g.groups(ctx)
	if err != nil {
		return failed(RetUnavailable, "contacts: "+err.Error())
	}
	return ok(gs)
}

func (g *Gateway) getGroupInfo(ctx context.Context, c call) Response {
	id, err := c.params.NeedInt64("group_id")
	if err != nil {
		return paramFailure(err)
	}
	gs, err := g.groups(ctx)
	if err != nil {
		return failed(RetUnavailable, "contacts: "+err.Error())
	}
	for _, gr := range gs {
		if gr.GroupID == id {
			return ok(gr)
		}
	}
	return failed(RetUnknownTarget, "no group "+strconv.FormatInt(id, 10))
}

func (g *Gateway) getMsg(ctx context.Context, c call) Response {
	id, err := c.params.NeedInt64("message_id")
	if err != nil {
		return paramFailure(err)
	}
	if id > 0x7fffffff {
		return failed(RetUnknownTarget, "no message "+strconv.FormatInt(id, 10))
	}
	m, err := Resolve(ctx, g.store, int32(id))
	if errors.Is(err, ErrNotFound) {
		return failed(RetUnknownTarget, "no message "+strconv.FormatInt(id, 10))
	}
	if err != nil {
		return failed(RetInternal, "store: "+err.Error())
	}
	var msg any = m.Message
	if g.cfg.MessageFormat == FormatString {
		msg = FormatCQ(m.Message)
	}
	data := map[string]any{
		"time": m.Time, "message_type": m.MessageType, "message_id": int32(id), "real_id": int32(id),
		"sender":  map[string]any{"user_id": m.UserID, "nickname": m.Nickname, "sex": "unknown", "age": 0},
		"message": msg,
	}
	if m.GroupID != 0 {
		data["group_id"] = m.GroupID
	}
	if m.DiscussID != 0 {
		data["discuss_id"] = m.DiscussID
	}
	return ok(data)
}

func (g *Gateway) getStatus(ctx context.Context, _ call) Response {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := g.backend.SessionState(cctx); err == nil {
		g.SetState(st)
	} else {
		return ok(Status{QQState: "no_bridge"})
	}
	return ok(g.status())
}

func (g *Gateway) getVersionInfo(context.Context, call) Response {
	return ok(map[string]string{"app_name": "qqbridge", "app_version": g.cfg.Version, "protocol_version": "v11"})
}

// quickOp is the quick operation of a message event (the reply to an HTTP
// POST, or .handle_quick_operation's operation).
type quickOp struct {
	Reply      json.RawMessage `json:"reply"`
	AutoEscape bool            `json:"auto_escape"`
	AtSender   *bool           `json:"at_sender"`
}

func (g *Gateway) handleQuickOperation(ctx context.Context, c call) Response {
	var ev struct {
		PostType    string `json:"post_type"`
		MessageType string `json:"message_type"`
		MessageID   int32  `json:"message_id"`
		UserID      int64  `json:"user_id"`
		GroupID     int64  `json:"group_id"`
		DiscussID   int64  `json:"discuss_id"`
		SubType     string `json:"sub_type"`
		Sender      struct {
			Nickname string `json:"nickname"`
			Card     string `json:"card"`
		} `json:"sender"`
	}
	raw, has := c.params.raw("context")
	if !has || json.Unmarshal(raw, &ev) != nil {
		return failed(RetBadRequest, "param context: want the event object")
	}
	var op quickOp
	if raw, has := c.params.raw("operation"); !has || json.Unmarshal(raw, &op) != nil {
		return failed(RetBadRequest, "param operation: want an object")
	}
	if ev.PostType != PostMessage {
		return ok(nil) // requests and notices have no quick operation SmartQQ can do
	}
	id, err := RequestID(ctx, g.store, c.echo, c.action, c.body, g.cfg.EchoWindow, time.Now())
	if err != nil {
		return failed(RetInternal, "store: "+err.Error())
	}
	return g.quickReply(ctx, id, ev.MessageType, ev.UserID, ev.GroupID, ev.DiscussID, ev.SubType == "group", pick(ev.Sender.Card, ev.Sender.Nickname), op)
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// quickReply answers a message event with op's reply (nothing when none).
// In groups and discussions the sender is mentioned first unless at_sender
// is false (as text: SmartQQ has no mentions).
func (g *Gateway) quickReply(ctx context.Context, id, messageType string, user, group, discuss int64, sess bool, name string, op quickOp) Response {
	if len(op.Reply) == 0 || string(op.Reply) == "null" {
		return ok(nil)
	}
	segs, err := DecodeMessage(op.Reply, op.AutoEscape)
	if err != nil {
		return paramFailure(err)
	}
	if messageType != "private" && (op.AtSender == nil || *op.AtSender) {
		if name == "" {
			name = strconv.FormatInt(user, 10)
		}
		segs = append([]Segment{TextSeg("@" + name + " ")}, segs...)
	}
	out, err := ToSchema(segs)
	if err != nil {
		return paramFailure(err)
	}
	switch messageType {
	case "private":
		via := int64(0)
		if sess {
			via = group
		}
		return g.deliver(ctx, id, "private", user, via, out, segs)
	case "group":
		return g.deliver(ctx, id, "group", 0, group, out, segs)
	case "discuss":
		return g.deliver(ctx, id, "discuss", 0, discuss, out, segs)
	}
	return failed(RetBadRequest, "context: message_type "+strconv.Quote(truncate(messageType, 32)))
}
