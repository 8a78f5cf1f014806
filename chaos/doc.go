// Package chaos holds qqbridge's chaos suite (chaos_test.go): a 3-node
// JetStream cluster (in-process nats-servers with routes on 127.0.0.1, each
// stopped and restarted on the same port and store), qqsim and 2–3 `bridge
// run` replicas as separate processes. Inbound traffic goes through qqsim at a
// steady rate and outbound sends with unique ids are published while the
// suite kills -9 the leader replica, stops the NATS node that leads QQ_IN,
// plays an HTTP 502 storm, expires the QQ session and kills -9 the replica
// that is sending a request while QQ holds its answer; it then counts what
// arrived and prints a table, with the time from that kill until the
// interrupted request's result was published. It runs on Linux: the
// replica that owns a connection is found in /proc.
//
// The suite is behind the build tag chaos (plain go test ./... builds none of it):
//
//	go test -count=1 -v -tags chaos ./chaos                              # reduced (CI)
//	go test -count=1 -v -timeout 30m -tags chaos ./chaos -run 'TestChaos$' \
//	    -args -events 10000 -sends 2000 -gap 20s -drain 120s              # full size
//
// The package has no code outside its tests.
package chaos
