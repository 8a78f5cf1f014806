package onebot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Params are the parameters of an action. Over WebSocket and in a JSON body
// they are JSON values; from a query string or a form every value is a
// string. The getters accept both: a number may come as 123 or "123", a
// boolean as true, "true", "1" or 1.
type Params map[string]json.RawMessage

// ParamsFromValues turns a query string or form into Params (the first
// value of each key, as a JSON string).
func ParamsFromValues(v url.Values) Params {
	p := make(Params, len(v))
	for k, vs := range v {
		if len(vs) == 0 {
			continue
		}
		b, _ := json.Marshal(vs[0])
		p[k] = b
	}
	return p
}

// ParamError is a parameter that is missing or has the wrong type: the
// action answers retcode 1400.
type ParamError struct {
	Name, Reason string
}

func (e *ParamError) Error() string { return "param " + e.Name + ": " + e.Reason }

func (p Params) raw(name string) (json.RawMessage, bool) {
	r, ok := p[name]
	if !ok {
		return nil, false
	}
	r = bytes.TrimSpace(r)
	if len(r) == 0 || string(r) == "null" {
		return nil, false
	}
	return r, true
}

// Has reports whether name is given (and not null).
func (p Params) Has(name string) bool { _, ok := p.raw(name); return ok }

// Int64 returns the number name, 0 and false when it is absent.
func (p Params) Int64(name string) (int64, bool, error) {
	r, ok := p.raw(name)
	if !ok {
		return 0, false, nil
	}
	s := string(r)
	if r[0] == '"' {
		if err := json.Unmarshal(r, &s); err != nil {
			return 0, false, &ParamError{name, "not a string"}
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, false, &ParamError{name, fmt.Sprintf("%q is not an integer", truncate(s, 32))}
		}
		n = int64(f)
	}
	return n, true, nil
}

// NeedInt64 returns the positive number name or a ParamError.
func (p Params) NeedInt64(name string) (int64, error) {
	n, ok, err := p.Int64(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, &ParamError{name, "missing"}
	}
	if n <= 0 {
		return 0, &ParamError{name, "must be positive"}
	}
	return n, nil
}

// Bool returns the boolean name (false when absent).
func (p Params) Bool(name string) (bool, error) {
	r, ok := p.raw(name)
	if !ok {
		return false, nil
	}
	s := string(r)
	if r[0] == '"' {
		_ = json.Unmarshal(r, &s)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no", "":
		return false, nil
	}
	return false, &ParamError{name, "not a boolean"}
}

// String returns the string name ("" when absent); a number is returned in
// its JSON text.
func (p Params) String(name string) string {
	r, ok := p.raw(name)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}
