package auth

import "time"

// SetJWKSRefresh lets a test see a rotated key at once. Call it before the
// first token.
func SetJWKSRefresh(o *OAuth, d time.Duration) { o.jwksRefresh = d }
