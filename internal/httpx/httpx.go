// Package httpx holds the small HTTP conventions that several packages'
// handlers share, so that each is written once.
package httpx

import "net/http"

// ReadOnly lets GET and HEAD through and answers any other method itself,
// 405 with the Allow header the status requires. It reports whether the
// handler goes on.
func ReadOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}
