package main

import (
	"log/slog"

	"github.com/go-logr/logr"
)

// logrFromSlog is the portal's one logr/slog bridge: Kubernetes libraries log through logr, the
// portal through slog, and both end in the same JSON handler.
func logrFromSlog(l *slog.Logger) logr.Logger { return logr.FromSlogHandler(l.Handler()) }
