package proxy

import "fmt"

// maxMessage caps one JSON-RPC message in either direction. It sits well above
// what mcpwrap accepts (16 MiB by default), so the remote, not the shim, sets
// the real limit.
const maxMessage = 64 << 20

// errTooLong reports a line or event over maxMessage.
var errTooLong = fmt.Errorf("message longer than %d bytes", maxMessage)
