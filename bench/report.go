package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report is one run's result. Its JSON form is flat, with unique key
// names, so that a shell script can pick a figure out with sed.
type report struct {
	Mode            string `json:"mode"`
	Target          string `json:"target"`
	Sessions        int    `json:"sessions"`
	Opened          int    `json:"sessions_opened"`
	CallsPerSession int    `json:"calls_per_session"`
	InFlight        int    `json:"inflight"`
	Tool            string `json:"tool"`
	PayloadBytes    int    `json:"payload_bytes"`
	ResponseBytes   int    `json:"response_bytes"`

	setup     latencySummary
	call      latencySummary
	SetupWall time.Duration `json:"-"`
	CallWall  time.Duration `json:"-"`
	Elapsed   time.Duration `json:"-"`

	CallsOK     int     `json:"calls_ok"`
	CallsPerSec float64 `json:"calls_per_sec"`
	CutShort    bool    `json:"cut_short"`

	ErrorsTotal   int               `json:"errors_total"`
	Errors        map[string]int    `json:"errors"`
	ErrorExamples map[string]string `json:"error_examples"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *report) writeJSON(w io.Writer) error {
	type alias report // drops the methods, keeps the tags
	out := struct {
		*alias
		SetupP50  float64 `json:"setup_p50_ms"`
		SetupP90  float64 `json:"setup_p90_ms"`
		SetupP99  float64 `json:"setup_p99_ms"`
		SetupMax  float64 `json:"setup_max_ms"`
		SetupWall float64 `json:"setup_wall_s"`
		CallP50   float64 `json:"call_p50_ms"`
		CallP90   float64 `json:"call_p90_ms"`
		CallP99   float64 `json:"call_p99_ms"`
		CallMax   float64 `json:"call_max_ms"`
		CallWall  float64 `json:"call_wall_s"`
		Elapsed   float64 `json:"elapsed_s"`
	}{
		alias:     (*alias)(r),
		SetupP50:  ms(r.setup.p50),
		SetupP90:  ms(r.setup.p90),
		SetupP99:  ms(r.setup.p99),
		SetupMax:  ms(r.setup.max),
		SetupWall: r.SetupWall.Seconds(),
		CallP50:   ms(r.call.p50),
		CallP90:   ms(r.call.p90),
		CallP99:   ms(r.call.p99),
		CallMax:   ms(r.call.max),
		CallWall:  r.CallWall.Seconds(),
		Elapsed:   r.Elapsed.Seconds(),
	}
	if out.Errors == nil {
		out.Errors = map[string]int{}
		out.ErrorExamples = map[string]string{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (r *report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target     %s (%s)\n", r.Target, r.Mode)
	work := fmt.Sprintf("tool %s", r.Tool)
	switch {
	case r.ResponseBytes > 0:
		work += fmt.Sprintf(", response %d B", r.ResponseBytes)
	case r.PayloadBytes > 0:
		work += fmt.Sprintf(", payload %d B", r.PayloadBytes)
	}
	fmt.Fprintf(&b, "sessions   %d of %d opened, %d calls each, %d in flight, %s\n",
		r.Opened, r.Sessions, r.CallsPerSession, r.InFlight, work)
	fmt.Fprintf(&b, "setup      %s  (all opened in %.2f s)\n", latencyText(r.setup), r.SetupWall.Seconds())
	fmt.Fprintf(&b, "calls      %s\n", latencyText(r.call))
	fmt.Fprintf(&b, "throughput %.0f calls/s  (%d calls in %.2f s)\n", r.CallsPerSec, r.CallsOK, r.CallWall.Seconds())
	if r.CutShort {
		fmt.Fprintf(&b, "cut short  by --max-duration after %.1f s\n", r.Elapsed.Seconds())
	}
	if r.ErrorsTotal == 0 {
		b.WriteString("errors     none\n")
	} else {
		fmt.Fprintf(&b, "errors     %d\n", r.ErrorsTotal)
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %-14s %6d  e.g. %.200s\n", k, r.Errors[k], r.ErrorExamples[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func latencyText(s latencySummary) string {
	if s.n == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  (n=%d)",
		ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max), s.n)
}
