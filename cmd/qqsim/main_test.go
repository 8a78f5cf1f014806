package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/qqsim"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:8080" || o.qrTTL != 120*time.Second || o.pollHold != 60*time.Second ||
		o.sessionTTL != 48*time.Hour || o.rateLimit != 20 || !o.echo || o.baseURL != "" ||
		o.profile != qqsim.Profile2018 || o.strict || o.emptyPoll != "" || o.seedConf || o.record != "" {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseFlags([]string{"--listen", "127.0.0.1:0", "--echo=false", "--poll-hold", "200ms", "--base-url", "http://127.0.0.1:9"}, io.Discard)
	if err != nil || o.echo || o.pollHold != 200*time.Millisecond || o.baseURL != "http://127.0.0.1:9" {
		t.Errorf("%+v %v", o, err)
	}
	o, err = parseFlags([]string{"--profile", "2015", "--strict", "--empty-poll", "504", "--seed-confirm", "--record", "r.jsonl"}, io.Discard)
	if err != nil || o.profile != qqsim.Profile2015 || !o.strict || o.emptyPoll != qqsim.EmptyPoll504 || !o.seedConf || o.record != "r.jsonl" {
		t.Errorf("%+v %v", o, err)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "8080"}, "--listen"},
		{[]string{"--qr-ttl", "0s"}, "--qr-ttl must be a positive duration"},
		{[]string{"--poll-hold", "-1s"}, "--poll-hold"},
		{[]string{"--session-ttl", "soon"}, "invalid value"},
		{[]string{"--rate-limit", "0"}, "--rate-limit 0"},
		{[]string{"--base-url", "127.0.0.1:8080"}, "--base-url"},
		{[]string{"--base-url", "http://h/path"}, "--base-url"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"--profile", "2016"}, "--profile"},
		{[]string{"--file-ttl", "0s"}, "--file-ttl"},
		{[]string{"--transfer-latency", "-1s"}, "--transfer-latency"},
		{[]string{"--empty-poll", "103"}, "--empty-poll"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, b := range bad {
		_, err := parseFlags(b.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: %v, want an error mentioning %q", b.args, err, b.want)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestRunRefusesBadWorld(t *testing.T) {
	err := run([]string{"--listen", "127.0.0.1:0", "--world", "testdata/does-not-exist.json"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "read world") {
		t.Errorf("run with a missing world file: %v", err)
	}
}
