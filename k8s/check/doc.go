// Package check renders qqbridge's Kubernetes manifests (k8s/base and every
// overlay under k8s/overlays) with kustomize and checks them offline: every
// object decodes strictly into its Kubernetes API type, the bridge
// container's args and environment name real flags of the bridge binary, no
// Secret is shipped, and the NATS StatefulSet agrees with its configuration
// (pid file, probes, store size, routes, passwords).
//
// It is a module of its own so that kustomize and the Kubernetes API types
// stay out of qqbridge's module. Run it with `cd k8s/check && go test ./...`.
package check
