package schema_test

import (
	"errors"
	"fmt"

	"github.com/qqbridge/qqbridge/schema"
)

// A consumer decodes an event from a message's header and body (with
// nats.go: DecodeEvent(msg.Header, msg.Data)).
func ExampleDecodeEvent() {
	header := map[string][]string{"Content-Type": {"application/json"}}
	body := []byte(`{"v":1,"id":"931996776:group:50873","type":"message.group","time":"2015-12-21T08:47:05Z",
	 "account":931996776,"msg_id":50873,
	 "from":{"uin":3680220215,"qq":123456,"nick":"Alice","card":"Alice@dev"},
	 "group":{"gid":2323421101,"number":987654,"name":"Dev chat"},
	 "text":"好啊 /微笑","segments":[{"type":"text","text":"好啊 "},{"type":"face","face":14}]}`)
	e, err := schema.DecodeEvent(header, body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Kind(), e.Group.Number, e.From.Card, e.Text)
	for _, s := range e.Segments {
		fmt.Printf("%s %q %d\n", s.Type, s.Text, s.Face)
	}
	// Output:
	// group 987654 Alice@dev 好啊 /微笑
	// text "好啊 " 0
	// face "" 14
}

func ExampleSubjects() {
	s, err := schema.NewSubjects("qq")
	if err != nil {
		fmt.Println(err)
		return
	}
	group, _ := s.In(schema.KindGroup, schema.StableID(987654))
	friend, _ := s.In(schema.KindFriend, schema.SessionNumberID(schema.IDPrefixUIN, 3785096088))
	_, err = s.In(schema.KindGroup, "98.7654")
	fmt.Println(group)
	fmt.Println(friend)
	fmt.Println(errors.Is(err, schema.ErrInvalidSubject))
	fmt.Println(s.Out(schema.KindGroup), s.Result(schema.KindGroup), s.API("send", "group"))
	fmt.Println(s.StreamIn(), s.StreamOut(), s.SessionBucket())
	// Output:
	// qq.in.group.987654
	// qq.in.friend.uin3785096088
	// true
	// qq.out.group qq.result.group qq.api.send.group
	// QQ_IN QQ_OUT qq_session
}

func ExampleDecodeRequest() {
	req, err := schema.DecodeRequest("application/json", []byte(`{"id":"order-1","to":{"qq":123456,"group":987654},"text":"hello"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Validate(schema.KindSess))
	fmt.Println(req.Validate(schema.KindFriend))
	// Output:
	// <nil>
	// invalid request: to.group: not used by friend (it takes qq or uin)
}
