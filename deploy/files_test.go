package deploy_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// The deployment files cannot be built or deployed here (no Docker daemon,
// no Fly.io), so these tests hold them to what can be checked: that they
// name what the build produces, agree with each other and with mcpwrap's
// shutdown budget, and that the real binary accepts their settings.

// dockerfiles are the Dockerfiles of the repository, relative to its root.
var dockerfiles = []string{"Dockerfile.example", "examples/docker/Dockerfile.uvx", "examples/docker/Dockerfile.gobinary"}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
}

type stage struct {
	From, Name string
	Insts      []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before FROM", path, in.Cmd)
		}
		stages[len(stages)-1].Insts = append(stages[len(stages)-1].Insts, in)
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.Insts {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

// env is the stage's ENV, in both of its forms (K=V ..., and K V).
func (s stage) env(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, args := range s.all("ENV") {
		if k, v, ok := strings.Cut(args, " "); ok && !strings.Contains(k, "=") {
			m[k] = strings.TrimSpace(v)
			continue
		}
		for _, kv := range strings.Fields(args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("ENV %q: not K=V", args)
			}
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// knownVariables are the MCPWRAP_ variables the real binary documents in
// its -help output.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	mcpwrapBin, _ := testkit.Programs(t)
	out, _ := exec.Command(mcpwrapBin, "-help").CombinedOutput()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\((MCPWRAP_[A-Z_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if len(known) < 10 {
		t.Fatalf("mcpwrap -help documents only %d variables:\n%s", len(known), out)
	}
	return known
}

// defaultShutdown is MCPWRAP_SHUTDOWN_TIMEOUT's default, from -help.
func defaultShutdown(t *testing.T) time.Duration {
	t.Helper()
	mcpwrapBin, _ := testkit.Programs(t)
	out, _ := exec.Command(mcpwrapBin, "-help").CombinedOutput()
	m := regexp.MustCompile(`\(MCPWRAP_SHUTDOWN_TIMEOUT\) \(default ([0-9a-z.]+)\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no MCPWRAP_SHUTDOWN_TIMEOUT default in -help:\n%s", out)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// goVersion is go.mod's go directive, major.minor.
func goVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	return string(m[1])
}

// isMainPackage reports whether dir (relative to the repository root) holds
// a command.
func isMainPackage(dir string) bool {
	files, _ := filepath.Glob(filepath.Join("..", dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b) {
			return true
		}
	}
	return false
}

// checkVariables fails on MCPWRAP_ names the binary does not know, and on a
// token written into a file.
func checkVariables(t *testing.T, file string, vars map[string]string, known map[string]bool) {
	t.Helper()
	for k := range vars {
		if strings.HasPrefix(k, "MCPWRAP_") && !known[k] {
			t.Errorf("%s sets %s, which mcpwrap does not know", file, k)
		}
		if k == "MCPWRAP_TOKEN" || k == "MCPWRAP_AUTH_SECRET" || k == "MCPWRAP_AUTH_SECRET_PREVIOUS" || strings.HasSuffix(k, "_CLIENT_SECRET") {
			t.Errorf("%s writes %s into the file; it must come from a secret at run time", file, k)
		}
	}
}

// serves runs the real binary with a file's MCPWRAP_ settings (listening on loopback
// instead, with a token) and checks that it starts and that /healthz, the
// health check every file points at, answers 200.
func serves(t *testing.T, vars map[string]string) {
	t.Helper()
	e := env{"MCPWRAP_TOKEN": token}
	for k, v := range vars {
		if strings.HasPrefix(k, "MCPWRAP_") && k != "MCPWRAP_LISTEN" && k != "MCPWRAP_TENANTS_FILE" {
			e[k] = v
		}
	}
	in := startMcpwrap(t, e)
	if status, _ := in.Health(t); status != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", status)
	}
}

func port(t *testing.T, listen string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen address %q: %v", listen, err)
	}
	return p
}

func TestDockerfiles(t *testing.T) {
	known := knownVariables(t)
	goVer := goVersion(t)
	for _, file := range dockerfiles {
		t.Run(file, func(t *testing.T) {
			stages := parseDockerfile(t, file)
			if len(stages) < 2 {
				t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
			}
			build, final := stages[0], stages[len(stages)-1]

			// The build stage: Go of go.mod's version, static binaries of
			// commands that exist in the repository.
			if !strings.HasPrefix(build.From, "golang:"+goVer) {
				t.Errorf("build stage FROM %s, want golang:%s (go.mod)", build.From, goVer)
			}
			built := map[string]bool{}
			goBuild := regexp.MustCompile(`(CGO_ENABLED=0 )?go build [^&]*?-o (\S+) (\S+)`)
			for _, run := range build.all("RUN") {
				for _, m := range goBuild.FindAllStringSubmatch(run, -1) {
					if m[1] == "" {
						t.Errorf("%q: not CGO_ENABLED=0, so not a static binary", m[0])
					}
					if !isMainPackage(m[3]) {
						t.Errorf("%q builds %s, which is not a command in this repository", m[0], m[3])
					}
					built[m[2]] = true
				}
			}
			if !slices.ContainsFunc(build.all("COPY"), func(a string) bool { return a == ". ." }) {
				t.Error("the build stage does not copy the repository (COPY . .)")
			}

			// The runtime stage has what was built, where ENTRYPOINT looks.
			copied := map[string]bool{} // destination paths
			for _, c := range final.all("COPY") {
				f := strings.Fields(c)
				if len(f) == 3 && f[0] == "--from="+build.Name {
					if !built[f[1]] {
						t.Errorf("COPY %s: the build stage does not produce %s (it builds %v)", c, f[1], built)
					}
					copied[f[2]] = true
				}
			}
			entry := final.all("ENTRYPOINT")
			if len(entry) != 1 {
				t.Fatalf("%d ENTRYPOINTs in the final stage, want 1", len(entry))
			}
			var argv []string
			if err := json.Unmarshal([]byte(entry[0]), &argv); err != nil {
				t.Fatalf("ENTRYPOINT %s is not the exec (JSON) form, so mcpwrap would not get signals: %v", entry[0], err)
			}
			if len(argv) < 3 || filepath.Base(argv[0]) != "mcpwrap" || argv[1] != "--" {
				t.Fatalf("ENTRYPOINT %v, want mcpwrap -- command...", argv)
			}
			bin := argv[0]
			if !filepath.IsAbs(bin) {
				bin = "/usr/local/bin/" + bin // on PATH in every base image used
			}
			if !copied[bin] {
				t.Errorf("ENTRYPOINT runs %s, but the image has mcpwrap at %v", bin, copied)
			}
			switch cmd := argv[2]; {
			case filepath.IsAbs(cmd):
				if !copied[cmd] {
					t.Errorf("ENTRYPOINT wraps %s, which nothing copies into the image", cmd)
				}
			case cmd == "npx":
				pkg := argv[len(argv)-1]
				installed := false
				for _, run := range final.all("RUN") {
					installed = installed || strings.Contains(run, "npm install") && strings.Contains(run, " "+pkg+"@")
				}
				if !installed {
					t.Errorf("npx runs %s, which no RUN npm install puts in the image: every session would download it", pkg)
				}
			case cmd == "uvx":
				tool := argv[3]
				installed := false
				for _, run := range final.all("RUN") {
					installed = installed || strings.Contains(run, "uv tool install "+tool+"==")
				}
				if !installed {
					t.Errorf("uvx runs %s, which no RUN uv tool install puts in the image", tool)
				}
			default:
				t.Errorf("ENTRYPOINT wraps %s: this test knows absolute paths, npx and uvx", cmd)
			}

			// Run time: a user of its own, the port it listens on, no token.
			users := final.all("USER")
			if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0"}, users[len(users)-1]) {
				t.Errorf("USER %v: the runtime must not be root", users)
			}
			vars := final.env(t)
			checkVariables(t, file, vars, known)
			listen := vars["MCPWRAP_LISTEN"]
			if listen == "" {
				t.Fatal("no ENV MCPWRAP_LISTEN: say which port the image serves")
			}
			if got := final.all("EXPOSE"); len(got) != 1 || got[0] != port(t, listen) {
				t.Errorf("EXPOSE %v, want %s (MCPWRAP_LISTEN=%s)", got, port(t, listen), listen)
			}
			for _, hc := range final.all("HEALTHCHECK") {
				if !strings.Contains(hc, ":"+port(t, listen)+"/healthz") {
					t.Errorf("HEALTHCHECK %q does not ask :%s/healthz", hc, port(t, listen))
				}
			}
			if s := final.all("STOPSIGNAL"); len(s) > 0 && s[0] != "SIGTERM" {
				t.Errorf("STOPSIGNAL %s: mcpwrap shuts down gracefully on SIGTERM", s[0])
			}
			budget := defaultShutdown(t)
			if v := vars["MCPWRAP_SHUTDOWN_TIMEOUT"]; v != "" {
				var err error
				if budget, err = time.ParseDuration(v); err != nil {
					t.Fatal(err)
				}
			}
			if budget+time.Second > 10*time.Second {
				t.Errorf("MCPWRAP_SHUTDOWN_TIMEOUT %s does not fit docker stop's default 10 s", budget)
			}

			// The build context leaves out what must not go into it.
			ignore, err := os.ReadFile(filepath.Join("..", file+".dockerignore"))
			if err != nil {
				t.Errorf("no %s.dockerignore beside it: %v", file, err)
			}
			for _, must := range []string{".git", "node_modules"} {
				if !strings.Contains(string(ignore), must) {
					t.Errorf("%s.dockerignore does not leave out %s", file, must)
				}
			}

			// The real binary accepts the image's settings and serves.
			serves(t, vars)
			// Without a token, the image refuses to serve anyone, loudly.
			mcpwrapBin, fixture := testkit.Programs(t)
			cmd := exec.Command(mcpwrapBin, "--", fixture)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range vars {
				if strings.HasPrefix(k, "MCPWRAP_") {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "MCPWRAP_TOKEN") {
				t.Errorf("without a token: exit %d (%v), output %q; want exit 2 naming MCPWRAP_TOKEN", code, err, out)
			}
		})
	}
}

// flyConfig is a fly.toml, flattened: "kill_timeout", "http_service.internal_port",
// "env.MCPWRAP_LOG_FORMAT", "http_service.checks[0].path", "files[0].guest_path".
type flyConfig map[string]string

// parseTOML reads the subset of TOML that fly.toml files use: tables, arrays
// of tables, and key = string, number or boolean.
func parseTOML(t *testing.T, path string) flyConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	cfg := flyConfig{}
	counts := map[string]int{}
	table := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, ok := strings.CutPrefix(line, "[["); ok {
			// fly.toml's arrays sit at the top or in a table there is one
			// of (http_service.checks), so a count per name is its index.
			name = strings.TrimSuffix(name, "]]")
			table = name + "[" + strconv.Itoa(counts[name]) + "]"
			counts[name]++
			continue
		}
		if name, ok := strings.CutPrefix(line, "["); ok {
			table = strings.TrimSuffix(name, "]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: cannot read %q", path, i+1, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				t.Fatalf("%s:%d: unterminated string", path, i+1)
			}
			v = v[1 : end+1]
		} else if j := strings.Index(v, "#"); j >= 0 {
			v = strings.TrimSpace(v[:j])
		}
		if table != "" {
			k = table + "." + k
		}
		if _, dup := cfg[k]; dup {
			t.Fatalf("%s:%d: %s set twice", path, i+1, k)
		}
		cfg[k] = v
	}
	return cfg
}

func TestFlyConfigs(t *testing.T) {
	known := knownVariables(t)
	final := parseDockerfile(t, "Dockerfile.example")
	image := final[len(final)-1]
	imageVars := image.env(t)
	for _, file := range []string{"examples/fly/fly.toml", "examples/fly/fly-tenants.toml"} {
		t.Run(file, func(t *testing.T) {
			cfg := parseTOML(t, file)
			want := map[string]string{
				"kill_signal":                       "SIGTERM",
				"http_service.auto_stop_machines":   "stop",
				"http_service.auto_start_machines":  "true",
				"http_service.min_machines_running": "0",
				"http_service.checks[0].method":     "GET",
				"http_service.checks[0].path":       "/healthz",
				"http_service.internal_port":        port(t, imageVars["MCPWRAP_LISTEN"]),
			}
			for k, v := range want {
				if cfg[k] != v {
					t.Errorf("%s = %q, want %q", k, cfg[k], v)
				}
			}

			vars := map[string]string{}
			for k, v := range cfg {
				if name, ok := strings.CutPrefix(k, "env."); ok {
					vars[name] = v
				}
			}
			checkVariables(t, file, vars, known)

			// Fly kills the Machine kill_timeout after kill_signal; mcpwrap
			// needs its whole shutdown budget before that.
			budget := defaultShutdown(t)
			for _, v := range []string{imageVars["MCPWRAP_SHUTDOWN_TIMEOUT"], vars["MCPWRAP_SHUTDOWN_TIMEOUT"]} {
				if v != "" {
					budget, _ = time.ParseDuration(v)
				}
			}
			kill, err := time.ParseDuration(cfg["kill_timeout"])
			if err != nil {
				if n, nerr := strconv.Atoi(cfg["kill_timeout"]); nerr == nil {
					kill, err = time.Duration(n)*time.Second, nil
				}
			}
			if err != nil || kill < budget+time.Second {
				t.Errorf("kill_timeout %q, want at least MCPWRAP_SHUTDOWN_TIMEOUT (%s) + 1s", cfg["kill_timeout"], budget)
			}

			// Auto-stop needs sessions that end: an idle timeout, and a
			// Machine that stays stopped when mcpwrap exits 0 by itself.
			if d, err := time.ParseDuration(vars["MCPWRAP_SESSION_IDLE_TIMEOUT"]); err != nil || d <= 0 {
				t.Errorf("MCPWRAP_SESSION_IDLE_TIMEOUT %q: an idle session's open stream would keep the Machine running forever", vars["MCPWRAP_SESSION_IDLE_TIMEOUT"])
			}
			if vars["MCPWRAP_EXIT_WHEN_IDLE"] != "" && cfg["restart[0].policy"] == "always" {
				t.Error(`MCPWRAP_EXIT_WHEN_IDLE with restart policy "always" restarts the Machine mcpwrap stopped`)
			}

			// A tenants file comes from a secret that children never see.
			if path := vars["MCPWRAP_TENANTS_FILE"]; path != "" {
				if cfg["files[0].guest_path"] != path {
					t.Errorf("MCPWRAP_TENANTS_FILE %s, but [[files]] writes %q", path, cfg["files[0].guest_path"])
				}
				if s := cfg["files[0].secret_name"]; !strings.HasPrefix(s, "MCPWRAP_") {
					t.Errorf("secret %q: Fly also puts secrets in the environment, and only MCPWRAP_ variables are kept from the child", s)
				}
			}

			// The steps in the header name files that exist.
			b, _ := os.ReadFile(filepath.Join("..", file))
			for _, m := range regexp.MustCompile(`--(?:config|dockerfile) (\S+)`).FindAllStringSubmatch(string(b), -1) {
				if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
					t.Errorf("the steps name %s: %v", m[1], err)
				}
			}

			// The secrets the steps set are ones mcpwrap knows. With
			// MCPWRAP_AUTH_SECRET, sign-in needs the app's public URL.
			secrets := map[string]bool{}
			for _, m := range regexp.MustCompile(`fly secrets set -a \S+ (MCPWRAP_[A-Z_]+)=`).FindAllStringSubmatch(string(b), -1) {
				secrets[m[1]] = true
				if !known[m[1]] && m[1] != cfg["files[0].secret_name"] {
					t.Errorf("the steps set the secret %s, which mcpwrap does not know (nor [[files]] writes)", m[1])
				}
			}
			if secrets["MCPWRAP_AUTH_SECRET"] && vars["MCPWRAP_PUBLIC_URL"] != "https://"+cfg["app"]+".fly.dev" {
				t.Errorf("MCPWRAP_PUBLIC_URL %q, want https://%s.fly.dev: the issuer and resource clients sign in to", vars["MCPWRAP_PUBLIC_URL"], cfg["app"])
			}

			merged := map[string]string{}
			for k, v := range imageVars {
				merged[k] = v
			}
			for k, v := range vars {
				merged[k] = v
			}
			if secrets["MCPWRAP_AUTH_SECRET"] {
				merged["MCPWRAP_AUTH_SECRET"] = "bm90LWEtcmVhbC1zZWNyZXQtanVzdC0zMi1ieXRlcw==" // as long as openssl rand -base64 32
			}
			serves(t, merged)
		})
	}
}

func TestClientConfigs(t *testing.T) {
	files, err := filepath.Glob("../examples/fly/clients/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("client examples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		delete(top, "inputs") // VS Code's prompts for secrets
		b, _ = json.Marshal(top)
		var cfg map[string]map[string]struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Command string            `json:"command"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		n := 0
		for _, servers := range cfg {
			for name, s := range servers {
				n++
				url := s.URL
				if s.Command != "" {
					if s.Command != "mcpwrap" || len(s.Args) != 2 || s.Args[0] != "proxy" {
						t.Errorf("%s: %s runs %s %v, want mcpwrap proxy URL", f, name, s.Command, s.Args)
					}
					if s.Env["MCPWRAP_TOKEN"] == "" {
						t.Errorf("%s: %s gives the shim no MCPWRAP_TOKEN", f, name)
					}
					url = s.Args[len(s.Args)-1]
				} else if !strings.HasPrefix(s.Headers["Authorization"], "Bearer ") {
					t.Errorf("%s: %s sends no bearer token", f, name)
				}
				if !strings.HasPrefix(url, "https://") || !strings.HasSuffix(url, "/mcp") {
					t.Errorf("%s: %s uses %q, want https://.../mcp", f, name, url)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no server", f)
		}
	}
}

func TestKubernetesManifest(t *testing.T) {
	known := knownVariables(t)
	b, err := os.ReadFile("../examples/kubernetes/mcpwrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	field := func(name string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`(?m)^\s*-?\s*`+name+`:\s*(\S+)`).FindAllStringSubmatch(text, -1) {
			out = append(out, strings.Trim(m[1], `"`))
		}
		return out
	}
	image := parseDockerfile(t, "Dockerfile.example")
	vars := image[len(image)-1].env(t)
	if got := field("containerPort"); len(got) != 1 || got[0] != port(t, vars["MCPWRAP_LISTEN"]) {
		t.Errorf("containerPort %v, want %s as Dockerfile.example serves", got, port(t, vars["MCPWRAP_LISTEN"]))
	}
	for _, p := range regexp.MustCompile(`path: (\S+?)[,}]`).FindAllStringSubmatch(text, -1) {
		if p[1] != "/healthz" {
			t.Errorf("probe path %s, want /healthz", p[1])
		}
	}
	names := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)- name: (MCPWRAP_\w+)\n\s+(value|valueFrom):\s*(.*)`).FindAllStringSubmatch(text, -1) {
		names[m[1]] = m[3]
		if m[1] == "MCPWRAP_TOKEN" && m[2] != "valueFrom" {
			t.Error("MCPWRAP_TOKEN is written into the manifest; take it from a Secret")
		}
	}
	if _, ok := names["MCPWRAP_TOKEN"]; !ok {
		t.Error("the manifest gives mcpwrap no MCPWRAP_TOKEN")
	}
	if _, ok := names["MCPWRAP_EXIT_WHEN_IDLE"]; ok {
		t.Error("MCPWRAP_EXIT_WHEN_IDLE in a Deployment: Kubernetes restarts a container that exits, whatever its code")
	}
	for k := range names {
		if !known[k] {
			t.Errorf("the manifest sets %s, which mcpwrap does not know", k)
		}
	}
	budget := defaultShutdown(t)
	if v := strings.Trim(names["MCPWRAP_SHUTDOWN_TIMEOUT"], `"`); v != "" {
		budget, _ = time.ParseDuration(v)
	}
	sleep := 0
	if m := regexp.MustCompile(`sleep: \{seconds: (\d+)\}`).FindStringSubmatch(text); m != nil {
		sleep, _ = strconv.Atoi(m[1])
	}
	grace, _ := strconv.Atoi(strings.Join(field("terminationGracePeriodSeconds"), ""))
	if time.Duration(grace)*time.Second < time.Duration(sleep)*time.Second+budget+time.Second {
		t.Errorf("terminationGracePeriodSeconds %d < preStop %ds + MCPWRAP_SHUTDOWN_TIMEOUT %s + 1s", grace, sleep, budget)
	}
}
