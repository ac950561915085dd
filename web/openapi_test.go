package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/web"
)

// openAPIDoc is as much of an OpenAPI document as the tests check.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Parameters map[string]parameter       `json:"parameters"`
		Responses  map[string]response        `json:"responses"`
		Schemas    map[string]schema          `json:"schemas"`
		Headers    map[string]json.RawMessage `json:"headers"`
	} `json:"components"`
}

type operation struct {
	OperationID string              `json:"operationId"`
	Description string              `json:"description"`
	Security    *[]map[string][]any `json:"security"`
	Scope       string              `json:"x-twofa-scope"`
	Parameters  []parameter         `json:"parameters"`
	RequestBody *json.RawMessage    `json:"requestBody"`
	Responses   map[string]response `json:"responses"`
}

type parameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type response struct {
	Ref         string                     `json:"$ref"`
	Description string                     `json:"description"`
	Headers     map[string]json.RawMessage `json:"headers"`
	Content     map[string]json.RawMessage `json:"content"`
}

type schema struct {
	Properties map[string]struct {
		Enum []string `json:"enum"`
	} `json:"properties"`
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// readOpenAPI parses openapi.json and returns its operations by
// "METHOD /path".
func readOpenAPI(t *testing.T) (*openAPIDoc, map[string]operation, []byte) {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	ops := map[string]operation{}
	for path, item := range doc.Paths {
		for m, v := range item {
			if !slices.Contains(methods, m) {
				continue
			}
			var op operation
			if err := json.Unmarshal(v, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			ops[strings.ToUpper(m)+" "+path] = op
		}
	}
	return &doc, ops, raw
}

// route is one mux.Handle line of routes.go.
type route struct {
	pattern string // "METHOD /path"
	auth    bool   // wrapped in requireScope
	admin   bool   // wrapped in requireScope(true)
}

// readRoutes extracts every route from routes.go, but the catch-all "/".
func readRoutes(t *testing.T) []route {
	t.Helper()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	scopes := map[string]bool{} // wrapper name: admin
	for _, m := range regexp.MustCompile(`(\w+)\s*:=\s*s\.requireScope\((true|false)\)`).FindAllSubmatch(src, -1) {
		scopes[string(m[1])] = string(m[2]) == "true"
	}
	if len(scopes) == 0 {
		t.Fatalf("routes.go: no requireScope wrappers found; has the file changed shape?")
	}
	var routes []route
	for _, m := range regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]*)",\s*(\w*)`).FindAllSubmatch(src, -1) {
		pattern := string(m[1])
		if pattern == "/" {
			continue
		}
		if !regexp.MustCompile(`^[A-Z]+ /`).MatchString(pattern) {
			t.Errorf("routes.go: route %q has no method: document it or give it one", pattern)
			continue
		}
		admin, auth := scopes[string(m[2])]
		routes = append(routes, route{pattern: pattern, auth: auth, admin: admin})
	}
	if len(routes) < 10 {
		t.Fatalf("routes.go: found only %d routes; has the file changed shape?", len(routes))
	}
	return routes
}

// TestOpenAPI_Routes: the document describes exactly the routes that
// routes.go serves, with the right security.
func TestOpenAPI_Routes(t *testing.T) {
	doc, ops, _ := readOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	if doc.Info.Title == "" || doc.Info.Version == "" || doc.Info.Description == "" {
		t.Errorf("info lacks title, version or description: %+v", doc.Info)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("securitySchemes.bearerAuth = %+v, want http bearer", s)
	}

	served := map[string]bool{}
	for _, rt := range readRoutes(t) {
		served[rt.pattern] = true
		op, ok := ops[rt.pattern]
		if !ok {
			t.Errorf("route %s is missing from openapi.json", rt.pattern)
			continue
		}
		t.Run(strings.ReplaceAll(rt.pattern, "/", "_"), func(t *testing.T) {
			checkOperation(t, doc, rt, op)
		})
	}
	for p := range ops {
		if !served[p] {
			t.Errorf("openapi.json documents %s, which no route serves", p)
		}
	}
}

func checkOperation(t *testing.T, doc *openAPIDoc, rt route, op operation) {
	if op.OperationID == "" || op.Description == "" {
		t.Errorf("no operationId or description")
	}
	has2xx := false
	for status := range op.Responses {
		has2xx = has2xx || strings.HasPrefix(status, "2")
	}
	if !has2xx {
		t.Errorf("no 2xx response")
	}
	// Parameters, by where they are and their name.
	params := map[string]bool{}
	for _, p := range op.Parameters {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[name]
		}
		params[p.In+":"+p.Name] = true
	}
	path := strings.SplitN(rt.pattern, " ", 2)[1]
	for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
		if !params["path:"+m[1]] {
			t.Errorf("path parameter %s is not described", m[1])
		}
	}
	status := func(code string) bool { _, ok := op.Responses[code]; return ok }
	if !rt.auth {
		if op.Security == nil || len(*op.Security) != 0 {
			t.Errorf("an unauthenticated route must say security: []")
		}
		return
	}
	if op.Security == nil || len(*op.Security) == 0 || (*op.Security)[0]["bearerAuth"] == nil {
		t.Errorf("an authenticated route needs security: [{bearerAuth: []}]")
	}
	for _, h := range []string{web.HeaderEndUserIP, web.HeaderEndUserAgent} {
		if !params["header:"+h] {
			t.Errorf("header %s is not described", h)
		}
	}
	for _, code := range []string{"400", "401", "500"} {
		if !status(code) {
			t.Errorf("no %s response", code)
		}
	}
	if rt.admin != (op.Scope == "admin") || rt.admin && !strings.Contains(op.Description, "admin") {
		t.Errorf("admin route %v, but x-twofa-scope %q and description %q", rt.admin, op.Scope, op.Description)
	}
	if rt.admin != status("403") {
		t.Errorf("admin route %v, but 403 documented %v", rt.admin, status("403"))
	}
	if op.RequestBody != nil && (!status("413") || !status("415")) {
		t.Errorf("a route with a body must document 413 and 415")
	}
	if r, ok := op.Responses["429"]; ok {
		if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
			r = doc.Components.Responses[name]
		}
		if _, ok := r.Headers["Retry-After"]; !ok {
			t.Errorf("429 response without Retry-After")
		}
	}
}

// TestOpenAPI_Document: the file is valid, 2-space indented JSON whose
// every $ref resolves, whose operationIds are unique, and whose enums say
// what the Service says.
func TestOpenAPI_Document(t *testing.T) {
	doc, ops, raw := readOpenAPI(t)
	var indented bytes.Buffer
	if err := json.Indent(&indented, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(indented.Bytes()), bytes.TrimSpace(raw)) {
		t.Errorf("openapi.json is not 2-space indented JSON (try: python3 -m json.tool --indent 2)")
	}

	var tree any
	json.Unmarshal(raw, &tree)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && resolve(tree, ref) == nil {
				t.Errorf("$ref %q does not resolve", ref)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(tree)

	ids := map[string]string{}
	for p, op := range ops {
		if prev, ok := ids[op.OperationID]; ok {
			t.Errorf("operationId %q of both %s and %s", op.OperationID, prev, p)
		}
		ids[op.OperationID] = p
	}

	enums := []struct {
		schema, field string
		want          []string
	}{
		{"VerifyResult", "reason", []string{twofa.ReasonInvalidCode, twofa.ReasonReplayed}},
		{"VerifyResult", "factor", []string{twofa.FactorTOTP, twofa.FactorBackupCode, twofa.FactorEmail}},
		{"Device", "type", []string{string(twofa.KindTOTP), string(twofa.KindEmail)}},
		{"Challenge", "purpose", []string{twofa.PurposeSignIn, twofa.PurposeConfirm}},
		{"Challenge", "state", []string{twofa.ChallengePending, twofa.ChallengeVerified, twofa.ChallengeExpired}},
		{"Device", "status", []string{string(twofa.StatusPending), string(twofa.StatusActive)}},
		{"ErrorDetail", "code", []string{twofa.EINVALID, twofa.ENOTFOUND, twofa.ECONFLICT, twofa.EUNAUTHORIZED,
			twofa.EFORBIDDEN, twofa.ERATELIMITED, twofa.EINTERNAL, "too_large"}},
	}
	for _, e := range enums {
		got := slices.Clone(doc.Components.Schemas[e.schema].Properties[e.field].Enum)
		sort.Strings(got)
		want := slices.Clone(e.want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s.%s enum = %q, want %q", e.schema, e.field, got, want)
		}
	}
}

// resolve returns what a local $ref points to, or nil.
func resolve(tree any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	v := tree
	for _, k := range strings.Split(p, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		k = strings.NewReplacer("~1", "/", "~0", "~").Replace(k)
		if v, ok = m[k]; !ok {
			return nil
		}
	}
	return v
}

// TestOpenAPI_Served: GET /v1/openapi.json serves the file as it is.
func TestOpenAPI_Served(t *testing.T) {
	e := newEnv(t, nil)
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	got, _ := io.ReadAll(w.Body)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || !bytes.Equal(got, want) {
		t.Errorf("GET /v1/openapi.json: %d %q, %d bytes; want 200 application/json, the %d bytes of openapi.json",
			w.Code, w.Header().Get("Content-Type"), len(got), len(want))
	}
}
