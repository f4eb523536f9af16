package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReadOnly(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions, http.MethodDelete} {
		w := httptest.NewRecorder()
		ok := ReadOnly(w, httptest.NewRequest(m, "/", nil))
		want := m == http.MethodGet || m == http.MethodHead
		if ok != want {
			t.Errorf("%s: went on %v, want %v", m, ok, want)
		}
		if !want && (w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD") {
			t.Errorf("%s: %d Allow %q, want 405 with Allow: GET, HEAD", m, w.Code, w.Header().Get("Allow"))
		}
	}
}
