package mail

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/internal/testenv"
)

func TestSMTPConfigFromSecret(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    map[string]string
		want    SMTPConfig
		wantErr string
	}{
		{name: "plain relay defaults to opportunistic", data: map[string]string{"host": "mail", "port": "25"},
			want: SMTPConfig{Host: "mail", Port: 25, TLS: TLSOpportunistic}},
		{name: "credentials default to starttls", data: map[string]string{"host": "mail", "port": "587", "username": "u", "password": "p"},
			want: SMTPConfig{Host: "mail", Port: 587, Username: "u", Password: "p", TLS: TLSStartTLS}},
		{name: "implicit tls", data: map[string]string{"host": "mail", "port": "465", "tls": "TLS"},
			want: SMTPConfig{Host: "mail", Port: 465, TLS: TLSImplicit}},
		{name: "none", data: map[string]string{"host": "mail", "port": "1025", "tls": "none", "username": "u"},
			want: SMTPConfig{Host: "mail", Port: 1025, Username: "u", TLS: TLSNone}},
		{name: "no host", data: map[string]string{"port": "25"}, wantErr: "key host"},
		{name: "no port", data: map[string]string{"host": "mail"}, wantErr: "key port is missing"},
		{name: "bad port", data: map[string]string{"host": "mail", "port": "70000"}, wantErr: "between 1 and 65535"},
		{name: "bad tls", data: map[string]string{"host": "mail", "port": "25", "tls": "ssl"}, wantErr: "starttls, tls or none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tc.data {
				data[k] = []byte(v)
			}
			got, err := SMTPConfigFromSecret(data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "p\"") {
					t.Fatalf("error leaks a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSessionLinkRender(t *testing.T) {
	exp := time.Date(2026, time.March, 4, 15, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		locale, subject, expiry, button string
	}{
		{"", "Tu acceso a Acme", "4 de marzo de 2026 a las 12:30 (UTC−3)", "Abrir el portal"},
		{"es", "Tu acceso a Acme", "4 de marzo de 2026 a las 12:30 (UTC−3)", "Abrir el portal"},
		{"en", "Your access to Acme", "March 4, 2026 at 12:30 (UTC−3)", "Open the portal"},
		{"fr", "Tu acceso a Acme", "4 de marzo de 2026", "Abrir el portal"}, // unknown → Spanish, the default
	} {
		msg, err := SessionLink{Locale: tc.locale, PortalName: "Acme", URL: "https://b.example/s/tok<&>", ExpiresAt: exp, SupportEmail: "help@acme.example"}.
			Render("Acme <billing@acme.example>", "jane@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != tc.subject {
			t.Errorf("%q: subject %q, want %q", tc.locale, msg.Subject, tc.subject)
		}
		for _, want := range []string{"https://b.example/s/tok<&>", tc.expiry, "help@acme.example"} {
			if !strings.Contains(msg.Text, want) {
				t.Errorf("%q: text lacks %q:\n%s", tc.locale, want, msg.Text)
			}
		}
		if !strings.Contains(msg.HTML, tc.button) || !strings.Contains(msg.HTML, "tok&lt;&amp;&gt;") {
			t.Errorf("%q: HTML lacks the button or escapes the link wrongly:\n%s", tc.locale, msg.HTML)
		}
		if msg.From != "Acme <billing@acme.example>" || msg.To != "jane@example.com" {
			t.Errorf("%q: from %q to %q", tc.locale, msg.From, msg.To)
		}
	}
}

func TestSMTPSenderDeliversToMailpit(t *testing.T) {
	mp := testenv.StartMailpit(t, testenv.MailpitOptions{})
	for _, tc := range []struct {
		name string
		cfg  SMTPConfig
	}{
		{"opportunistic, no auth", SMTPConfig{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: TLSOpportunistic}},
		{"none, with auth", SMTPConfig{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: TLSNone, Username: "u", Password: "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := strings.ReplaceAll(tc.name, " ", "") + "@example.com"
			to = strings.NewReplacer(",", "-").Replace(to)
			msg, err := SessionLink{Locale: "en", PortalName: "Acme", URL: "https://b.example/s/abc", ExpiresAt: time.Now().Add(time.Hour)}.
				Render("Acme <billing@acme.example>", to)
			if err != nil {
				t.Fatal(err)
			}
			if err := NewSMTPSender(tc.cfg).Send(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			got, err := mp.Messages(to)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d messages to %s, want 1", len(got), to)
			}
			full, err := mp.Message(got[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(full.Text, "https://b.example/s/abc") || !strings.Contains(full.HTML, "Open the portal") {
				t.Fatalf("bodies lack the link:\n%s\n%s", full.Text, full.HTML)
			}
		})
	}
}

func TestSMTPSenderReportsUnreachableServer(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	msg := Message{From: "billing@acme.example", To: "jane@example.com", Subject: "s", Text: "secret-body"}
	err = NewSMTPSender(SMTPConfig{Host: "127.0.0.1", Port: port, TLS: TLSNone, Timeout: 2 * time.Second}).Send(context.Background(), msg)
	if err == nil {
		t.Fatal("sent to a port nobody listens on")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) || strings.Contains(err.Error(), "secret-body") {
		t.Fatalf("error should name the server and not the body: %v", err)
	}
}

// TestProbe: a probe goes as far as a send would before DATA, and sends nothing.
func TestProbe(t *testing.T) {
	mp := testenv.StartMailpit(t, testenv.MailpitOptions{})
	s := NewSMTPSender(SMTPConfig{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: TLSNone, Timeout: 5 * time.Second})
	if err := s.Probe(context.Background()); err != nil {
		t.Fatalf("probe of a running server: %v", err)
	}
	if msgs, err := mp.Messages("anyone@example.com"); err != nil || len(msgs) != 0 {
		t.Fatalf("a probe sent mail: %v %v", msgs, err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := NewSMTPSender(SMTPConfig{Host: "127.0.0.1", Port: port, TLS: TLSNone, Timeout: 5 * time.Second})
	if err := down.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("probe of a closed port: %v", err)
	}
}
