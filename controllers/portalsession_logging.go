package controllers

import (
	"context"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// bodyDumpLevel is the verbosity at which client-go logs whole HTTP request and response bodies.
const bodyDumpLevel = 8

// withoutBodyDumps returns ctx with a logger that drops client-go's body dumps for the calls made
// with it. Link Secrets carry the token and the portal's SMTP Secret a password: at -v=8 client-go
// would otherwise write them to the log through the reconciler's contextual logger.
func withoutBodyDumps(ctx context.Context) context.Context {
	l := ctrl.LoggerFrom(ctx)
	sink := l.GetSink()
	if sink == nil {
		return ctx
	}
	return ctrl.LoggerInto(ctx, logr.New(maxLevelSink{LogSink: sink, max: bodyDumpLevel - 1}).V(l.GetV()))
}

// maxLevelSink passes on log lines up to verbosity max.
type maxLevelSink struct {
	logr.LogSink
	max int
}

func (s maxLevelSink) Enabled(level int) bool { return level <= s.max && s.LogSink.Enabled(level) }

func (s maxLevelSink) WithValues(kv ...any) logr.LogSink {
	return maxLevelSink{LogSink: s.LogSink.WithValues(kv...), max: s.max}
}

func (s maxLevelSink) WithName(name string) logr.LogSink {
	return maxLevelSink{LogSink: s.LogSink.WithName(name), max: s.max}
}
