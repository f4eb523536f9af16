package proxy

import "testing"

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"echo":            "echo",
		"test://a b":      "test://a b",
		"héllo":           "=?base64?aMOpbGxv?=",
		" padded":         "=?base64?IHBhZGRlZA==?=",
		"=?base64?abc?=":  "=?base64?PT9iYXNlNjQ/YWJjPz0=?=",
		"line\nbreak":     "=?base64?bGluZQpicmVhaw==?=",
		"":                "",
		"tab\tinside":     "=?base64?dGFiCWluc2lkZQ==?=",
		"ascii~!@#$%^&*(": "ascii~!@#$%^&*(",
	} {
		if got := headerValue(in); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
}
