// Package kubernetes holds example manifests for running snapvlm serve on
// Kubernetes; its test checks they parse and fit together.
package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port string `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Deployment
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Name  string   `yaml:"name"`
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					ReadinessProbe *probe `yaml:"readinessProbe"`
					StartupProbe   *probe `yaml:"startupProbe"`
					LivenessProbe  *probe `yaml:"livenessProbe"`
					Resources      struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service (selector is a plain map there)
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

func load(t *testing.T) map[string]manifest {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string]manifest{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(false)
		for {
			var m manifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", f)
			}
			out[m.Kind] = m
		}
	}
	return out
}

// TestManifests: the Deployment runs `snapvlm serve` listening on all
// interfaces on its named port, is ready only when /health says so, gives
// running answers more time than --shutdown-timeout, asks for resources;
// the Service selects its pods and targets that port.
func TestManifests(t *testing.T) {
	ms := load(t)
	d, ok := ms["Deployment"]
	if !ok {
		t.Fatal("no Deployment")
	}
	svc, ok := ms["Service"]
	if !ok {
		t.Fatal("no Service")
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("args %v: want serve first", c.Args)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flags[k] = v
	}
	if flags["host"] != "0.0.0.0" {
		t.Errorf("--host %q: a pod must listen on all interfaces", flags["host"])
	}
	if flags["model"] == "" {
		t.Errorf("no --model")
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || flags["port"] != strconv.Itoa(c.Ports[0].ContainerPort) {
		t.Errorf("ports %+v do not match --port %s", c.Ports, flags["port"])
	}
	for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != "http" {
			t.Errorf("%s probe %+v: want GET /health on port http", name, p)
		}
	}
	if p := c.LivenessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path == "/health" {
		t.Errorf("liveness on /health would restart pods while they load or drain")
	}
	st, err := time.ParseDuration(flags["shutdown-timeout"])
	if err != nil {
		t.Errorf("--shutdown-timeout %q: %v", flags["shutdown-timeout"], err)
	} else if time.Duration(spec.TerminationGracePeriodSeconds)*time.Second <= st {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than --shutdown-timeout %s", spec.TerminationGracePeriodSeconds, st)
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not match its pods", k, v)
		}
	}
	var sel struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
		} `yaml:"spec"`
	}
	b, _ := os.ReadFile("service.yaml")
	if err := yaml.Unmarshal(b, &sel); err != nil {
		t.Fatal(err)
	}
	if len(sel.Spec.Selector) == 0 {
		t.Errorf("the Service selects nothing")
	}
	for k, v := range sel.Spec.Selector {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Service's selector %s=%s does not match the pods", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != "http" {
		t.Errorf("service ports %+v: want one targeting the port named http", svc.Spec.Ports)
	}
}
