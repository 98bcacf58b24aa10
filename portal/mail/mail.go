// Package mail sends Portero's e-mail (session links, one-time codes) through a portal's SMTP
// server, and renders the messages in the portal's language.
package mail

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one e-mail to one recipient: a plain-text body and an optional HTML alternative.
type Message struct {
	// From is the sender, "Name <address>" or a bare address.
	From string
	// To is the recipient's address.
	To string
	// Subject is the subject line.
	Subject string
	// Text is the plain-text body; every message has one.
	Text string
	// HTML is an optional HTML alternative of Text.
	HTML string
}

// Sender delivers messages. Implementations must not log message bodies: they carry credentials
// such as session links and one-time codes.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// TLSMode is how the connection to the SMTP server is protected.
type TLSMode string

// The TLS modes a portal's SMTP Secret may ask for in its `tls` key.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and fails if the server cannot.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone never encrypts, and sends credentials in clear: only for local relays and test servers.
	TLSNone TLSMode = "none"
	// TLSOpportunistic uses STARTTLS when the server offers it and plain text otherwise. It is the
	// default only when no credentials are configured, so a password is never sent in clear by default.
	TLSOpportunistic TLSMode = "opportunistic"
)

// Keys of a portal's SMTP Secret.
const (
	KeyHost     = "host"
	KeyPort     = "port"
	KeyUsername = "username"
	KeyPassword = "password"
	KeyTLS      = "tls"
)

// SMTPConfig is where and how to reach an SMTP server.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      TLSMode
	// Timeout bounds connecting and each SMTP command; 15s when zero.
	Timeout time.Duration
}

// SMTPConfigFromSecret reads the keys of a portal's SMTP Secret (host, port, and optionally
// username, password and tls). Without a tls key the connection uses STARTTLS when credentials are
// set and opportunistic STARTTLS otherwise. Errors name the offending key, never its value.
func SMTPConfigFromSecret(data map[string][]byte) (SMTPConfig, error) {
	cfg := SMTPConfig{
		Host:     strings.TrimSpace(string(data[KeyHost])),
		Username: string(data[KeyUsername]),
		Password: string(data[KeyPassword]),
	}
	if cfg.Host == "" {
		return SMTPConfig{}, errors.New("key host is missing or empty")
	}
	portText := strings.TrimSpace(string(data[KeyPort]))
	if portText == "" {
		return SMTPConfig{}, errors.New("key port is missing or empty")
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return SMTPConfig{}, fmt.Errorf("key port must be a TCP port number between 1 and 65535, got %q", portText)
	}
	cfg.Port = port
	switch mode := TLSMode(strings.ToLower(strings.TrimSpace(string(data[KeyTLS])))); mode {
	case "":
		cfg.TLS = TLSOpportunistic
		if cfg.Username != "" {
			cfg.TLS = TLSStartTLS
		}
	case TLSStartTLS, TLSImplicit, TLSNone:
		cfg.TLS = mode
	default:
		return SMTPConfig{}, fmt.Errorf("key tls must be one of starttls, tls or none, got %q", string(data[KeyTLS]))
	}
	return cfg, nil
}

// SMTPSender sends messages through one SMTP server, one connection per message.
type SMTPSender struct {
	cfg SMTPConfig
}

// NewSMTPSender returns a Sender for the server cfg describes.
func NewSMTPSender(cfg SMTPConfig) *SMTPSender { return &SMTPSender{cfg: cfg} }

// Send delivers msg. The error describes the SMTP exchange, never the message body.
func (s *SMTPSender) Send(ctx context.Context, msg Message) error {
	m, err := buildMsg(msg)
	if err != nil {
		return err
	}
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("send through %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

// Probe connects, greets, negotiates TLS and authenticates as Send would, then quits without
// sending: whether a message could go out now. The portal probes where it sends nothing (a
// sign-in code asked for an address that is no customer's) so that an outage shows the same
// way whatever the address.
func (s *SMTPSender) Probe(ctx context.Context) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return fmt.Errorf("connect to %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("quit %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

// client is a go-mail client for the server, as configured.
func (s *SMTPSender) client() (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port)}
	if s.cfg.Timeout > 0 {
		opts = append(opts, gomail.WithTimeout(s.cfg.Timeout))
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		auth := gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover)
		if s.cfg.TLS == TLSNone {
			// go-mail refuses PLAIN and LOGIN on an unencrypted connection unless asked by name;
			// tls: none is that explicit request (a local relay), so allow them after the
			// challenge-response mechanisms.
			auth = gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc)
		}
		opts = append(opts, auth, gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("configure SMTP client for %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return c, nil
}

func buildMsg(msg Message) (*gomail.Msg, error) {
	if msg.Text == "" {
		return nil, errors.New("message has no text body")
	}
	if _, err := mail.ParseAddress(msg.To); err != nil {
		return nil, fmt.Errorf("recipient is not an e-mail address: %w", err)
	}
	m := gomail.NewMsg()
	if err := m.From(msg.From); err != nil {
		return nil, fmt.Errorf("sender %q: %w", msg.From, err)
	}
	if err := m.To(msg.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	m.Subject(msg.Subject)
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(gomail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	}
	return m, nil
}
