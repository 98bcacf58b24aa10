package bench

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Millisecond) // unsorted on purpose
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 8s test @ http://127.0.0.1:40000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.12ms   10.01ms  120.00ms   70.00%
    Req/Sec   710.00     50.00     800.00     70.00%
  Latency Distribution
     50%   44.00ms
     75%   50.00ms
     90%   60.00ms
     99%   95.50ms
  5680 requests in 8.00s, 31.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 568
Requests/sec:    710.00
Transfer/sec:      3.88MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 5680 || r.Errors != 3 || r.Non2xx != 568 || r.Seconds != 8 {
		t.Errorf("counts = %+v", r)
	}
	if r.P50 != 44*time.Millisecond || r.P99 != 95500*time.Microsecond {
		t.Errorf("p50 %v p99 %v", r.P50, r.P99)
	}
	if want := 710.0 * 0.9; r.RPS < want-0.01 || r.RPS > want+0.01 {
		t.Errorf("RPS = %v, want %v (successes only)", r.RPS, want)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Error("parseWrk(garbage) did not fail")
	}
}

func TestConstantPage(t *testing.T) {
	for _, n := range []int{10, 100, 5475, 20000} {
		if got := len(constantPage(n)); got != n {
			t.Errorf("constantPage(%d) has %d bytes", n, got)
		}
	}
}

func TestPostForm(t *testing.T) {
	page := `<html><body><form method="get" action="/search"><input name="q"></form>
<form method="POST" action="/s/abc"><input type="hidden" name="csrf" value="tok"><button name="go" value="1">Continue</button></form></body></html>`
	action, vals, err := PostForm([]byte(page))
	if err != nil {
		t.Fatal(err)
	}
	if action != "/s/abc" || vals.Get("csrf") != "tok" || vals.Get("go") != "1" || vals.Has("q") {
		t.Errorf("action %q values %v", action, vals)
	}
	if _, _, err := PostForm([]byte("<p>no form</p>")); err == nil || !strings.Contains(err.Error(), "no POST form") {
		t.Errorf("postForm without a form: %v", err)
	}
}

func TestSumMetric(t *testing.T) {
	text := "# HELP x\nworkqueue_depth{controller=\"a\",name=\"a\"} 3\nworkqueue_depth{controller=\"b\",name=\"b\"} 4\nother 9\n"
	if got := sumMetric(text, "workqueue_depth{"); got != 7 {
		t.Errorf("sumMetric = %v, want 7", got)
	}
}
