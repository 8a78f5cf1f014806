package qqsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrBadWorld is wrapped by every error that LoadWorld and New return for a world
// that cannot be served (unreadable JSON, a missing or duplicate number, a member
// list that names the owner nowhere…).
var ErrBadWorld = errors.New("qqsim: bad world")

// World is what the simulated account sees: itself, its friends, its groups with
// their members and its discussions. It holds stable numbers only (QQ numbers, group
// numbers, discussion ids); the session numbers (uin, gid, group code, did) are drawn
// at each login and never appear here.
//
// The account itself is implicitly a member of every group and discussion; it need
// not be listed among the members.
type World struct {
	Self        Person       `json:"self"`
	Friends     []Person     `json:"friends"`
	Groups      []GroupDef   `json:"groups"`
	Discussions []DiscussDef `json:"discussions"`
	// Categories names the friend categories (groups of the friend list). Optional: a
	// category a friend uses that is not named here is called "分组<index>", index 0
	// "我的好友".
	Categories []CategoryDef `json:"categories,omitempty"`
}

// Person is the account itself or one of its friends.
type Person struct {
	QQ       int64  `json:"qq"`
	Nick     string `json:"nick"`
	MarkName string `json:"markname,omitempty"` // the account's remark for this friend
	Category int    `json:"category,omitempty"` // friend category index
	Gender   string `json:"gender,omitempty"`   // "male", "female" or "unknown" (default)
	// Status is the friend's online status in get_online_buddies2: "online"
	// (default), "away", "busy", "callme", "silent" or "offline" (not listed).
	Status string `json:"status,omitempty"`
}

// GroupDef is one group (QQ 群) with its members.
type GroupDef struct {
	Number   int64       `json:"number"` // the group number people type to join it
	Name     string      `json:"name"`
	Memo     string      `json:"memo,omitempty"`     // the group's notice
	MarkName string      `json:"markname,omitempty"` // the account's remark for the group
	Owner    int64       `json:"owner"`              // the owner's QQ number (a member or the account itself)
	Members  []MemberDef `json:"members"`
}

// MemberDef is a member of a group; Card is the member's group card (群名片), empty
// when the member set none.
type MemberDef struct {
	QQ   int64  `json:"qq"`
	Nick string `json:"nick"`
	Card string `json:"card,omitempty"`
}

// DiscussDef is one discussion (讨论组). ID is a stable identifier of the simulator's
// own (the real service had none): the did of the protocol is drawn per session.
type DiscussDef struct {
	ID      int64        `json:"id"`
	Name    string       `json:"name"`
	Members []DiscussMem `json:"members"`
}

// DiscussMem is a member of a discussion.
type DiscussMem struct {
	QQ   int64  `json:"qq"`
	Nick string `json:"nick"`
}

// CategoryDef names a friend category.
type CategoryDef struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
}

// DefaultWorld returns the built-in world: an account with three friends, two groups
// (one with cards, one where nobody set a card) and one discussion. Each call returns
// a fresh copy.
func DefaultWorld() *World {
	return &World{
		Self: Person{QQ: 931996776, Nick: "qqbridge", Gender: "unknown"},
		Friends: []Person{
			{QQ: 123456, Nick: "Alice", MarkName: "爱丽丝", Category: 1, Gender: "female"},
			{QQ: 3524125, Nick: "Bob", Category: 0, Gender: "male", Status: "away"},
			{QQ: 1301948, Nick: "Hey", Category: 2, Gender: "male"},
		},
		Groups: []GroupDef{
			{
				Number: 987654, Name: "Dev chat", Memo: "群公告！请文明发言", MarkName: "开发群", Owner: 123456,
				Members: []MemberDef{
					{QQ: 123456, Nick: "Alice", Card: "Alice@dev"},
					{QQ: 3524125, Nick: "Bob"},
					{QQ: 2468024, Nick: "Carol", Card: "Carol (QA)"},
				},
			},
			{
				Number: 55443322, Name: "周末爬山", Owner: 3524125,
				Members: []MemberDef{
					{QQ: 3524125, Nick: "Bob"},
					{QQ: 7654321, Nick: "Dave"},
					{QQ: 1301948, Nick: "Hey"},
				},
			},
		},
		Discussions: []DiscussDef{
			{
				ID: 1008611, Name: "午饭吃什么",
				Members: []DiscussMem{
					{QQ: 123456, Nick: "Alice"},
					{QQ: 3524125, Nick: "Bob"},
					{QQ: 2468024, Nick: "Carol"},
				},
			},
		},
		Categories: []CategoryDef{{Index: 0, Name: "我的好友"}, {Index: 1, Name: "朋友"}, {Index: 2, Name: "同学"}},
	}
}

// LoadWorld reads a world from a JSON file (format in docs/qqsim.md). Unknown fields
// are refused, so a typo does not silently drop data. The error wraps ErrBadWorld
// (or the file system's error when the file cannot be read).
func LoadWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("qqsim: read world: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w World
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadWorld, path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s: data after the JSON object", ErrBadWorld, path)
	}
	if err := w.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadWorld, path, err)
	}
	return &w, nil
}

// Validate reports the first problem that makes w unservable; the error wraps
// ErrBadWorld.
func (w *World) Validate() error {
	if err := w.check(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadWorld, err)
	}
	return nil
}

// check returns the first problem of w.
func (w *World) check() error {
	bad := fmt.Errorf
	if w.Self.QQ <= 0 {
		return bad("self.qq must be a positive QQ number")
	}
	if err := checkStatus(w.Self); err != nil {
		return bad("self: %w", err)
	}
	friends := map[int64]bool{}
	for i, f := range w.Friends {
		switch {
		case f.QQ <= 0:
			return bad("friends[%d]: qq must be a positive QQ number", i)
		case f.QQ == w.Self.QQ:
			return bad("friends[%d]: qq %d is the account itself", i, f.QQ)
		case friends[f.QQ]:
			return bad("friends[%d]: qq %d listed twice", i, f.QQ)
		case f.Category < 0:
			return bad("friends[%d]: category must not be negative", i)
		}
		if err := checkStatus(f); err != nil {
			return bad("friends[%d]: %w", i, err)
		}
		friends[f.QQ] = true
	}
	groups := map[int64]bool{}
	for i, g := range w.Groups {
		members, err := checkParty(fmt.Sprintf("groups[%d]", i), "number", g.Number, g.Name, groups,
			g.Members, func(m MemberDef) int64 { return m.QQ }, w.Self.QQ)
		if err != nil {
			return err
		}
		if g.Owner != w.Self.QQ && !members[g.Owner] {
			return bad("groups[%d]: owner %d is neither a member nor the account itself", i, g.Owner)
		}
	}
	discussions := map[int64]bool{}
	for i, d := range w.Discussions {
		if _, err := checkParty(fmt.Sprintf("discussions[%d]", i), "id", d.ID, d.Name, discussions,
			d.Members, func(m DiscussMem) int64 { return m.QQ }, w.Self.QQ); err != nil {
			return err
		}
	}
	for i, c := range w.Categories {
		if c.Index < 0 {
			return bad("categories[%d]: index must not be negative", i)
		}
	}
	return nil
}

// checkParty checks the group or discussion at where: its key (called what) is positive
// and not yet in seen, its name is set, and each member's QQ number (got with qq) is
// positive, not self's and listed once. It adds key to seen and returns the members' QQ
// numbers.
func checkParty[M any](where, what string, key int64, name string, seen map[int64]bool,
	members []M, qq func(M) int64, self int64) (map[int64]bool, error) {
	bad := fmt.Errorf
	if key <= 0 {
		return nil, bad("%s: %s must be positive", where, what)
	}
	if seen[key] {
		return nil, bad("%s: %s %d listed twice", where, what, key)
	}
	seen[key] = true
	if name == "" {
		return nil, bad("%s: name is empty", where)
	}
	qqs := map[int64]bool{}
	for j, m := range members {
		n := qq(m)
		switch {
		case n <= 0:
			return nil, bad("%s.members[%d]: qq must be positive", where, j)
		case n == self:
			return nil, bad("%s.members[%d]: the account itself is a member implicitly; do not list it", where, j)
		case qqs[n]:
			return nil, bad("%s.members[%d]: qq %d listed twice", where, j, n)
		}
		qqs[n] = true
	}
	return qqs, nil
}

func checkStatus(p Person) error {
	switch p.Status {
	case "", "online", "away", "busy", "callme", "silent", "offline":
		return nil
	}
	return fmt.Errorf("status %q is not one of online, away, busy, callme, silent, offline", p.Status)
}

// clone returns a deep copy of w.
func (w *World) clone() *World {
	c := *w
	c.Friends = slices.Clone(w.Friends)
	c.Groups = slices.Clone(w.Groups)
	for i := range c.Groups {
		c.Groups[i].Members = slices.Clone(w.Groups[i].Members)
	}
	c.Discussions = slices.Clone(w.Discussions)
	for i := range c.Discussions {
		c.Discussions[i].Members = slices.Clone(w.Discussions[i].Members)
	}
	c.Categories = slices.Clone(w.Categories)
	return &c
}

// friend returns the friend with QQ number qq.
func (w *World) friend(qq int64) (Person, bool) {
	for _, f := range w.Friends {
		if f.QQ == qq {
			return f, true
		}
	}
	return Person{}, false
}

// group returns the group with number n.
func (w *World) group(n int64) (*GroupDef, bool) {
	for i := range w.Groups {
		if w.Groups[i].Number == n {
			return &w.Groups[i], true
		}
	}
	return nil, false
}

// discussion returns the discussion with stable id id.
func (w *World) discussion(id int64) (*DiscussDef, bool) {
	for i := range w.Discussions {
		if w.Discussions[i].ID == id {
			return &w.Discussions[i], true
		}
	}
	return nil, false
}

// member returns the member qq of group g.
func (g *GroupDef) member(qq int64) (MemberDef, bool) {
	for _, m := range g.Members {
		if m.QQ == qq {
			return m, true
		}
	}
	return MemberDef{}, false
}

// member reports whether qq is a member of discussion d.
func (d *DiscussDef) member(qq int64) (DiscussMem, bool) {
	for _, m := range d.Members {
		if m.QQ == qq {
			return m, true
		}
	}
	return DiscussMem{}, false
}

// people returns every QQ number of the world except the account's own, each once,
// friends first, in the order the world lists them.
func (w *World) people() []int64 {
	seen := map[int64]bool{w.Self.QQ: true}
	var out []int64
	add := func(qq int64) {
		if !seen[qq] {
			seen[qq] = true
			out = append(out, qq)
		}
	}
	for _, f := range w.Friends {
		add(f.QQ)
	}
	for _, g := range w.Groups {
		for _, m := range g.Members {
			add(m.QQ)
		}
	}
	for _, d := range w.Discussions {
		for _, m := range d.Members {
			add(m.QQ)
		}
	}
	return out
}

// nick returns the best-known nick of qq: the friend nick, else the first group or
// discussion nick.
func (w *World) nick(qq int64) string {
	if qq == w.Self.QQ {
		return w.Self.Nick
	}
	if f, ok := w.friend(qq); ok {
		return f.Nick
	}
	for _, g := range w.Groups {
		if m, ok := g.member(qq); ok {
			return m.Nick
		}
	}
	for _, d := range w.Discussions {
		if m, ok := d.member(qq); ok {
			return m.Nick
		}
	}
	return ""
}

// gender returns the gender of qq as the protocol spells it.
func (w *World) gender(qq int64) string {
	var g string
	if qq == w.Self.QQ {
		g = w.Self.Gender
	} else if f, ok := w.friend(qq); ok {
		g = f.Gender
	}
	if g == "" {
		return "unknown"
	}
	return g
}
