// Package testenv is the one test environment of qqbridge's tests: real
// components on loopback only, cleaned up when the test ends.
//
//   - NATS: an embedded nats-server with JetStream on a random 127.0.0.1 port
//     with its store in t.TempDir() (StartNATS), which a test may stop and
//     restart on the same port and store; a server without JetStream that gets
//     it later (NATSOptions.NoJetStream, EnableJetStream); a JetStream cluster
//     of n nodes whose nodes start when the test says (NewCluster).
//   - The simulator: qqsim on an httptest listener (StartSim), and a client of
//     its control API over HTTP (SimControl) that drives the QR login
//     (/_sim/qr/scan, /_sim/qr/confirm), makes contacts speak and reads
//     /_sim/sent — the same calls against an in-process or a separate qqsim.
//   - Waits: a Recorder of every message on a subject (WaitState for a
//     session state on <prefix>.session.state, WaitN for N messages), WaitSent
//     for a record in /_sim/sent, Eventually for anything else. Each wait is
//     bounded by WaitTimeout and fails the test with what it saw; none
//     measures time. LogBuffer collects a component's log or a process's
//     output and waits for a line in it.
//
// testenv is for tests only: it links the nats-server (through natsembed)
// and qqsim. Package qqsim's own in-package tests cannot use it (testenv
// imports qqsim).
package testenv

import "time"

// WaitTimeout bounds every wait of this package: a component that never gets
// there fails the test instead of hanging it. It is a deadline, not a
// measurement.
const WaitTimeout = 30 * time.Second
