package check

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsconf "github.com/nats-io/nats-server/v2/conf"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is one kustomization's output, decoded.
type rendered struct {
	dir  string
	objs []runtime.Object
}

// kustomizations lists k8s/base and every k8s/overlays/*.
func kustomizations(t *testing.T) []string {
	t.Helper()
	dirs := []string{filepath.Join("..", "base")}
	overlays, err := filepath.Glob(filepath.Join("..", "overlays", "*", "kustomization.yaml"))
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays under k8s/overlays (%v)", err)
	}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	return dirs
}

// render builds dir with kustomize and decodes every object strictly into
// its typed struct: an unknown or misspelt field fails.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := rendered{dir: dir}
	for _, res := range resMap.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, res.CurId(), err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(y, &meta); err != nil {
			t.Fatalf("%s: %s: %v", dir, res.CurId(), err)
		}
		gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
		obj, err := scheme.Scheme.New(gvk)
		if err != nil {
			t.Fatalf("%s: %s: not a known Kubernetes type: %v", dir, res.CurId(), err)
		}
		if err := yaml.UnmarshalStrict(y, obj); err != nil {
			t.Fatalf("%s: %s does not decode strictly as %s: %v\n%s", dir, res.CurId(), gvk, err, y)
		}
		r.objs = append(r.objs, obj)
	}
	return r
}

func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, r rendered, name string, get func(T) string) T {
	t.Helper()
	for _, v := range all[T](r) {
		if get(v) == name {
			return v
		}
	}
	var zero T
	t.Fatalf("%s: no %T named %q", r.dir, zero, name)
	return zero
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func TestRenderStrict(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			if len(r.objs) == 0 {
				t.Fatal("renders nothing")
			}
			for _, o := range r.objs {
				m, ok := o.(interface{ GetNamespace() string })
				if _, isNS := o.(*corev1.Namespace); ok && !isNS && m.GetNamespace() != "qqbridge" {
					t.Errorf("%T %v not in namespace qqbridge", o, o)
				}
			}
		})
	}
}

// The Secrets are the operator's to create: a Secret in the manifests would
// overwrite the real one on every apply.
func TestNoSecretShipped(t *testing.T) {
	placeholder := regexp.MustCompile(`(?i)change-?me|replace-?me|placeholder|example|secret|password`)
	for _, dir := range kustomizations(t) {
		r := render(t, dir)
		for _, s := range all[*corev1.Secret](r) {
			t.Errorf("%s: Secret %s is shipped; document `kubectl create secret` instead", dir, s.Name)
			for k, v := range s.StringData {
				if placeholder.MatchString(v) {
					t.Errorf("%s: Secret %s key %s holds a placeholder", dir, s.Name, k)
				}
			}
		}
	}
}

var (
	flagsOnce sync.Once
	flagSet   map[string]bool
	flagsErr  error
)

// bridgeFlags builds cmd/bridge and reads the flag names from `bridge run --help`.
func bridgeFlags(t *testing.T) map[string]bool {
	t.Helper()
	flagsOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			flagsErr = err
			return
		}
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("qqbridge-check-%d", os.Getpid()))
		defer os.Remove(bin)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bridge")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			flagsErr = fmt.Errorf("go build ./cmd/bridge: %v\n%s", err, out)
			return
		}
		var out bytes.Buffer
		help := exec.CommandContext(ctx, bin, "run", "--help")
		help.Stdout, help.Stderr = &out, &out
		help.Env = []string{} // no QQBRIDGE_* of this environment
		if err := help.Run(); err != nil {
			flagsErr = fmt.Errorf("bridge run --help: %v\n%s", err, out.String())
			return
		}
		flagSet = map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9][a-z0-9-]*)\b`).FindAllStringSubmatch(out.String(), -1) {
			flagSet[m[1]] = true
		}
		if len(flagSet) < 5 || !flagSet["nats"] {
			flagsErr = fmt.Errorf("could not read the flags from `bridge run --help`:\n%s", out.String())
		}
	})
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagSet
}

// envFlag maps QQBRIDGE_FOO_BAR to foo-bar ("" for a variable that is no twin).
func envFlag(name string) string {
	rest, ok := strings.CutPrefix(name, "QQBRIDGE_")
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-")
}

func TestBridgeArgsAndEnvAreFlags(t *testing.T) {
	flags := bridgeFlags(t)
	for _, dir := range kustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			d := one(t, r, "qqbridge", func(d *appsv1.Deployment) string { return d.Name })
			c := container(t, d.Spec.Template.Spec, "bridge")
			if len(c.Args) == 0 || c.Args[0] != "run" {
				t.Fatalf("args %q: want the command run first", c.Args)
			}
			for _, a := range c.Args[1:] {
				name, ok := strings.CutPrefix(a, "--")
				name, _, _ = strings.Cut(name, "=")
				if ok && !flags[name] {
					t.Errorf("arg %q: bridge run has no flag --%s", a, name)
				}
			}
			seen := map[string]bool{}
			for _, e := range c.Env {
				if seen[e.Name] {
					t.Errorf("env %s twice", e.Name)
				}
				seen[e.Name] = true
				if f := envFlag(e.Name); f != "" && !flags[f] {
					t.Errorf("env %s: bridge run has no flag --%s", e.Name, f)
				}
			}
			for _, need := range []string{"QQBRIDGE_NATS", "QQBRIDGE_SESSION_KEY", "QQBRIDGE_HTTP"} {
				if !seen[need] {
					t.Errorf("env %s missing", need)
				}
			}
		})
	}
}

// Sanity of the mapping itself, against a flag that must exist.
func TestEnvFlagMapping(t *testing.T) {
	for in, want := range map[string]string{
		"QQBRIDGE_SHUTDOWN_TIMEOUT": "shutdown-timeout", "QQBRIDGE_NATS": "nats", "NATS_BRIDGE_PASSWORD": "", "POD_NAME": "",
	} {
		if got := envFlag(in); got != want {
			t.Errorf("envFlag(%q) = %q, want %q", in, got, want)
		}
	}
	if flags := bridgeFlags(t); flags["no-such-flag"] || !flags["shutdown-timeout"] {
		t.Fatalf("flags read: %v", flags)
	}
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return c.Env[i], true
}

// natsConfig writes the rendered nats-config ConfigMap to a directory (so that
// include "auth.conf" resolves) and parses nats.conf as nats-server would, with
// the environment the StatefulSet gives it.
func natsConfig(t *testing.T, cm *corev1.ConfigMap, c corev1.Container) map[string]any {
	t.Helper()
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range c.Env {
		t.Setenv(e.Name, "value-of-"+e.Name) // references to variables the pod lacks fail the parse
	}
	m, err := natsconf.ParseFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	return m
}

func TestNATSStatefulSetMatchesItsConfig(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			ss := one(t, r, "nats", func(s *appsv1.StatefulSet) string { return s.Name })
			spec := ss.Spec.Template.Spec
			c := container(t, spec, "nats")

			var cmName string
			for _, v := range spec.Volumes {
				if v.Name == "config" && v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
				}
			}
			cm := one(t, r, cmName, func(c *corev1.ConfigMap) string { return c.Name })
			conf := natsConfig(t, cm, c)

			// the preStop signals the pid file nats.conf writes, on a mounted volume
			pid, _ := conf["pid_file"].(string)
			if pid == "" {
				t.Fatal("nats.conf has no pid_file: the lame-duck preStop cannot work")
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
				t.Fatal("no preStop exec")
			}
			if cmd := strings.Join(c.Lifecycle.PreStop.Exec.Command, " "); !strings.Contains(cmd, "ldm="+pid) {
				t.Errorf("preStop %q does not signal ldm=%s", cmd, pid)
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == filepath.Dir(pid) }) {
				t.Errorf("pid file %s is not on a mounted volume (read-only root)", pid)
			}
			if _, ok := conf["lame_duck_duration"]; !ok {
				t.Error("no lame_duck_duration")
			}

			// the probes of the official chart
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no %s probe", name)
				}
			}
			if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/healthz?js-server-only=true" {
				t.Errorf("readiness on %q, want /healthz?js-server-only=true", c.ReadinessProbe.HTTPGet.Path)
			}
			if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz?js-enabled-only=true" {
				t.Errorf("liveness on %q, want /healthz?js-enabled-only=true", c.LivenessProbe.HTTPGet.Path)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Error("NATS without memory request and limit")
			}
			if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
				t.Error("NATS without pod anti-affinity")
			}

			// the JetStream store stays below the volume
			js, _ := conf["jetstream"].(map[string]any)
			if js == nil {
				t.Fatal("nats.conf without jetstream")
			}
			var volume resource.Quantity
			for _, pvc := range ss.Spec.VolumeClaimTemplates {
				if pvc.Name == "data" {
					volume = pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				}
			}
			store, ok := js["max_file_store"].(int64)
			if !ok || store <= 0 || store >= volume.Value() {
				t.Errorf("max_file_store %v not below the volume %s", js["max_file_store"], volume.String())
			}

			// one route per server; none for a single server
			replicas := int32(1)
			if ss.Spec.Replicas != nil {
				replicas = *ss.Spec.Replicas
			}
			cluster, _ := conf["cluster"].(map[string]any)
			routes, _ := cluster["routes"].([]any)
			switch {
			case replicas == 1 && cluster != nil:
				t.Error("one NATS server with a cluster block: JetStream would wait for peers")
			case replicas > 1 && len(routes) != int(replicas):
				t.Errorf("%d NATS servers, %d routes", replicas, len(routes))
			}
			for i, rt := range routes {
				want := fmt.Sprintf("nats://%s-%d.%s:", ss.Name, i, ss.Spec.ServiceName)
				if s, _ := rt.(string); !strings.HasPrefix(s, want) {
					t.Errorf("route %d %q, want %s…", i, rt, want)
				}
			}
			if replicas > 1 {
				if !slices.ContainsFunc(all[*policyv1.PodDisruptionBudget](r), func(p *policyv1.PodDisruptionBudget) bool { return p.Name == "nats" }) {
					t.Error("no PodDisruptionBudget for NATS")
				}
			}

			// the bridge's stream replicas fit the cluster, and it logs in as a NATS user
			d := one(t, r, "qqbridge", func(d *appsv1.Deployment) string { return d.Name })
			bc := container(t, d.Spec.Template.Spec, "bridge")
			if e, ok := env(bc, "QQBRIDGE_REPLICAS"); ok && e.Value != fmt.Sprint(min(replicas, 3)) {
				t.Errorf("QQBRIDGE_REPLICAS %s with %d NATS servers", e.Value, replicas)
			}
			u, ok := env(bc, "QQBRIDGE_NATS")
			if !ok || !strings.Contains(u.Value, "bridge:$(NATS_BRIDGE_PASSWORD)@") {
				t.Errorf("QQBRIDGE_NATS %q does not log in as user bridge", u.Value)
			}
			if _, ok := env(bc, "NATS_BRIDGE_PASSWORD"); !ok {
				t.Error("QQBRIDGE_NATS uses $(NATS_BRIDGE_PASSWORD), which the container lacks")
			}
		})
	}
}
