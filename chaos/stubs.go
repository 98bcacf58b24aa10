package chaos

import (
	"context"
	"errors"
)

func notYet(title string) Outcome { return Outcome{Scenario: title, Err: errors.New("not built yet")} }

func SMTPDown(ctx context.Context, cfg Config) Outcome         { return notYet("SMTP down") }
func APIServerRestart(ctx context.Context, cfg Config) Outcome { return notYet("API server restarted") }
func LeaderHandover(ctx context.Context, cfg Config) Outcome   { return notYet("Leader handover") }
func Load(ctx context.Context, cfg Config) Outcome             { return notYet("Load") }
