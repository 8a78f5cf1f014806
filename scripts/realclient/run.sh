#!/usr/bin/env bash
# Runs a real SmartQQ client of 2017-2019 against cmd/qqsim in its default profile,
# with only its host names changed, and checks that it logs in, lists its contacts,
# receives a friend, a group and a discussion message and replies to each. The
# client's code is not part of this repository: give a checkout of it.
#
# usage: scripts/realclient/run.sh qqbot CHECKOUT [RECORDING.jsonl]   # pandolia/qqbot (Python)
#        scripts/realclient/run.sh mojo  CHECKOUT [RECORDING.jsonl]   # sjdy521/Mojo-Webqq (Perl)
#
# qqbot needs Debian's python3 with python3-requests and python3-apscheduler; mojo
# needs Debian's perl with libmojolicious-perl and libencode-locale-perl. Everything
# runs on 127.0.0.1; the client is refused any other host (qqbot_hosts.py,
# mojo_hosts.pl). With RECORDING, qqsim's --record output (what the client sent,
# issued values as placeholders) is written there.
set -euo pipefail

kind=${1:?usage: run.sh qqbot|mojo CHECKOUT [RECORDING.jsonl]}
checkout=${2:?usage: run.sh qqbot|mojo CHECKOUT [RECORDING.jsonl]}
recording=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
case $kind in
qqbot)
  [ -f "$checkout/qqbot/basicqsession.py" ] || { echo "run: $checkout is not a pandolia/qqbot checkout" >&2; exit 2; }
  "$python" -c 'import requests, apscheduler' 2>/dev/null || {
    echo "run: $python lacks requests or apscheduler (apt-get install -y python3-requests python3-apscheduler)" >&2; exit 2; } ;;
mojo)
  [ -f "$checkout/lib/Mojo/Webqq.pm" ] || { echo "run: $checkout is not a Mojo-Webqq checkout" >&2; exit 2; }
  perl -MMojolicious -MEncode::Locale -e1 2>/dev/null || {
    echo "run: perl lacks Mojolicious or Encode::Locale (apt-get install -y libmojolicious-perl libencode-locale-perl)" >&2; exit 2; } ;;
*) echo "run: unknown client $kind (qqbot or mojo)" >&2; exit 2 ;;
esac
checkout=$(cd "$checkout" && pwd)
python3=$python

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=${QQSIM_PORT:-$((20000 + RANDOM % 20000))}
sim="http://127.0.0.1:$port"
(cd "$repo" && go build -o "$work/qqsim" ./cmd/qqsim)
# QQSIM_FLAGS adds qqsim flags (QQSIM_FLAGS="--profile 2015 --strict" shows what the
# write-ups' rules do to a client).
# shellcheck disable=SC2086
"$work/qqsim" --listen "127.0.0.1:$port" --poll-hold 3s --qr-ttl 300s --record "$work/recording.jsonl" ${QQSIM_FLAGS:-} \
  >"$work/qqsim.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fsS "$sim/_sim/state" >/dev/null 2>&1 && break; sleep 0.1; done

state() { curl -fsS "$sim/_sim/state" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["login"])'; }
sent() { curl -fsS "$sim/_sim/sent"; }
fail() {
  echo "run: FAIL ($kind): $*" >&2
  echo "--- qqsim log (tail)" >&2; tail -n 30 "$work/qqsim.log" >&2 || true
  echo "--- client log (tail)" >&2; tail -n 60 "$work/client.log" >&2 || true
  exit 1
}
wait_for() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "$what"
}

mkdir -p "$work/bench" "$work/plugins" "$work/marks"
if [ "$kind" = qqbot ]; then
  cp "$here/qqsim_reply.py" "$work/plugins/"
  QQSIM_MARKS="$work/marks" HOME="$work" "$python" "$here/qqbot_hosts.py" "$checkout" "$sim" "$work/bench" "$work/plugins" \
    >"$work/client.log" 2>&1 </dev/null &
else
  HOME="$work" perl "$here/mojo_hosts.pl" "$checkout" "$sim" "$work/marks" >"$work/client.log" 2>&1 </dev/null &
fi
pids+=($!)

wait_for 60 "the client showed no QR code" sh -c "[ \"\$(curl -fsS $sim/_sim/state | $python -c 'import json,sys; print(json.load(sys.stdin)[\"login\"])')\" = qr_waiting ]"
sleep 4
curl -fsS -X POST "$sim/_sim/qr/scan" >/dev/null
sleep 4
curl -fsS -X POST "$sim/_sim/qr/confirm" >/dev/null
wait_for 60 "the client did not log in" sh -c "[ \"\$(curl -fsS $sim/_sim/state | $python -c 'import json,sys; print(json.load(sys.stdin)[\"login\"])')\" = online ]"
echo "run: logged in"
wait_for 90 "the client did not list its contacts" test -s "$work/marks/contacts.json"
echo "run: contacts: $(cat "$work/marks/contacts.json")"

say() { # json, expected kind, expected text
  curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$sim/_sim/messages" >/dev/null
  wait_for 90 "no $2 reply \"$3\"" sh -c "curl -fsS $sim/_sim/sent | $python -c '
import json, sys
want_kind, want_text = sys.argv[1], sys.argv[2]
sys.exit(0 if any(r[\"kind\"] == want_kind and r[\"text\"] == want_text for r in json.load(sys.stdin)) else 1)' '$2' '$3'"
  echo "run: $2 reply: $3"
}
say '{"kind":"friend","from":123456,"text":"ping friend"}' friend "pong ping friend"
say '{"kind":"group","from":3524125,"group":987654,"text":"ping group"}' group "pong ping group"
say '{"kind":"discuss","from":2468024,"did":1008611,"text":"ping discuss"}' discuss "pong ping discuss"

# Empty polls in both default 2018 forms (retcode 0, and retcode 0 with errmsg
# "error"): the client must keep polling through them.
if [ -z "${QQSIM_FLAGS:-}" ]; then
  wait_for 60 "no empty polls of both forms" sh -c "[ \$(curl -fsS $sim/_sim/state | $python -c 'import json,sys; c=json.load(sys.stdin)[\"counters\"]; print(min(c.get(k,0) for k in (\"polls_0\",\"polls_0_error\")))') -ge 1 ]"
  before=$(curl -fsS "$sim/_sim/state" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["counters"].get("poll2", 0))')
  wait_for 30 "the client stopped polling after the empty polls" sh -c "[ \$(curl -fsS $sim/_sim/state | $python -c 'import json,sys; print(json.load(sys.stdin)[\"counters\"].get(\"poll2\",0))') -gt $before ]"
  echo "run: empty polls (retcode 0, and 0 with errmsg error) survived"
fi

if [ -n "$recording" ]; then
  cp "$work/recording.jsonl" "$recording"
  echo "run: recording ($(wc -l <"$recording") requests) in $recording"
fi
echo "run: PASS ($kind): logged in, listed contacts and replied to a friend, a group and a discussion"
