package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is what one load run measured.
type LoadResult struct {
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`  // transport errors and timeouts
	Non2xx   int64         `json:"non2xx"`  // answers other than 200
	Seconds  float64       `json:"seconds"` // measured duration
	RPS      float64       `json:"rps"`     // completed 200s per second
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Max      time.Duration `json:"max"`
	Tool     string        `json:"tool"`
}

// LoadgenMain is `portero-bench loadgen`: an HTTP load generator run as its own process, so it
// does not share a Go runtime with what it measures. With -rate it is open-loop: requests are
// scheduled at fixed instants whatever the server does, and latency runs from the scheduled
// instant, so a stalled server cannot hide its stall by slowing the generator down (no
// coordinated omission). Without -rate it keeps -conns requests in flight (saturation). It
// prints one JSON LoadResult.
func LoadgenMain(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", "", "URL to GET.")
	cookie := fs.String("cookie", "", "Cookie header to send.")
	rate := fs.Float64("rate", 0, "Requests per second, open-loop; 0 keeps -conns in flight instead.")
	conns := fs.Int("conns", 32, "Connections (and requests in flight, without -rate).")
	duration := fs.Duration("duration", 10*time.Second, "Measured duration.")
	warmup := fs.Duration("warmup", 2*time.Second, "Unmeasured load before it.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("loadgen: -url is required")
	}
	tr := &http.Transport{
		MaxIdleConns:        *conns * 4,
		MaxIdleConnsPerHost: *conns * 4,
		MaxConnsPerHost:     0,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	// Closed loop: exactly -conns connections. Open loop: enough for a slow server to be seen
	// queueing (latency counts from the scheduled instant) without the generator itself
	// drowning the machine in connections.
	tr.MaxConnsPerHost = *conns
	if *rate > 0 {
		tr.MaxConnsPerHost = 256
	}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return 0, err
		}
		if *cookie != "" {
			req.Header.Set("Cookie", *cookie)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, err
	}

	var (
		mu        sync.Mutex
		lat       []time.Duration
		reqs, ok  atomic.Int64
		errs, bad atomic.Int64
		measuring atomic.Bool
	)
	record := func(scheduled time.Time, code int, err error) {
		if !measuring.Load() {
			return
		}
		d := time.Since(scheduled)
		reqs.Add(1)
		switch {
		case err != nil:
			errs.Add(1)
		case code != http.StatusOK:
			bad.Add(1)
		default:
			ok.Add(1)
		}
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration)
	defer cancel()
	start := time.Now()
	measureFrom := start.Add(*warmup)
	go func() {
		sleepUntil(ctx, measureFrom)
		measuring.Store(true)
	}()
	var wg sync.WaitGroup
	if *rate > 0 {
		period := time.Duration(float64(time.Second) / *rate)
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * period)
			if !at.Before(start.Add(*warmup + *duration)) {
				break
			}
			sleepUntil(ctx, at)
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, err := get(context.Background())
				record(at, code, err)
			}()
		}
	} else {
		for range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					at := time.Now()
					code, err := get(ctx)
					if ctx.Err() != nil {
						return // cut off by the end of the run: not a server error
					}
					record(at, code, err)
				}
			}()
		}
	}
	<-ctx.Done()
	measured := time.Since(measureFrom)
	measuring.Store(false)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	res := LoadResult{Requests: reqs.Load(), Errors: errs.Load(), Non2xx: bad.Load(), Seconds: measured.Seconds(), Tool: "go-loadgen"}
	res.RPS = float64(ok.Load()) / measured.Seconds()
	res.P50, res.P99, res.Max = Percentile(lat, 50), Percentile(lat, 99), Percentile(lat, 100)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// LoadOptions describe one load run.
type LoadOptions struct {
	URL, Cookie      string
	Rate             float64 // 0: saturation
	Conns            int
	Duration, Warmup time.Duration
}

// RunLoadgen runs self's loadgen subcommand and returns its result.
func RunLoadgen(ctx context.Context, self string, o LoadOptions) (LoadResult, error) {
	args := []string{"loadgen", "-url", o.URL, "-cookie", o.Cookie, "-conns", strconv.Itoa(o.Conns),
		"-duration", o.Duration.String(), "-warmup", o.Warmup.String()}
	if o.Rate > 0 {
		args = append(args, "-rate", strconv.FormatFloat(o.Rate, 'f', -1, 64))
	}
	cmd := exec.CommandContext(ctx, self, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return LoadResult{}, fmt.Errorf("loadgen: %w: %s", err, stderr.String())
	}
	var r LoadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return LoadResult{}, fmt.Errorf("loadgen output %q: %w", out, err)
	}
	return r, nil
}

// HaveWrk reports whether wrk is installed.
func HaveWrk() bool {
	_, err := exec.LookPath("wrk")
	return err == nil
}

// RunWrk measures saturation throughput with wrk (one thread: on a small machine every core wrk
// takes is one the server does not get, for the baseline and Portero alike).
func RunWrk(ctx context.Context, o LoadOptions) (LoadResult, error) {
	warm := exec.CommandContext(ctx, "wrk", "-t1", fmt.Sprintf("-c%d", o.Conns), fmt.Sprintf("-d%ds", max(int(o.Warmup.Seconds()), 1)),
		"-H", "Cookie: "+o.Cookie, o.URL)
	if out, err := warm.CombinedOutput(); err != nil {
		return LoadResult{}, fmt.Errorf("wrk warm-up: %w: %s", err, out)
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t1", fmt.Sprintf("-c%d", o.Conns), fmt.Sprintf("-d%ds", int(o.Duration.Seconds())),
		"--latency", "-H", "Cookie: "+o.Cookie, o.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return LoadResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(m?s|m|h)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// parseWrk reads wrk's report.
func parseWrk(out string) (LoadResult, error) {
	r := LoadResult{Tool: "wrk"}
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		d, _ := time.ParseDuration(m[2] + m[3])
		r.Seconds = d.Seconds()
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSockErrs.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, _ := time.ParseDuration(m[2] + m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	// wrk counts non-2xx answers as requests; only successes count as throughput.
	if r.Non2xx > 0 && r.Requests > 0 {
		r.RPS *= float64(r.Requests-r.Non2xx) / float64(r.Requests)
	}
	return r, nil
}

// ServeConstantMain is `portero-bench serve-constant`: the baseline page server, a plain
// net/http handler writing the same bytes every time, in its own process as the portal is.
func ServeConstantMain(args []string) error {
	fs := flag.NewFlagSet("serve-constant", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "Address to listen on.")
	size := fs.Int("size", 16<<10, "Body size in bytes.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	page := constantPage(*size)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// constantPage is an HTML page of exactly size bytes.
func constantPage(size int) []byte {
	const head, tail = "<!doctype html><html><body><pre>", "</pre></body></html>"
	if size < len(head)+len(tail) {
		return bytes.Repeat([]byte("x"), size)
	}
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < size-len(tail) {
		b.WriteString("Portero baseline page. ")
	}
	s := b.String()[:size-len(tail)] + tail
	return []byte(s)
}
