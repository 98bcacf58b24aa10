package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNamespaces(t *testing.T) {
	for in, want := range map[string][]string{
		"":                       nil,
		" , ":                    nil,
		"shop":                   {"shop"},
		"shop,billing":           {"billing", "shop"},
		" shop , billing,shop, ": {"billing", "shop"},
	} {
		got, err := parseNamespaces(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseNamespaces(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Shop", "shop;billing", "shop billing", "-shop"} {
		if _, err := parseNamespaces(in); err == nil || !strings.Contains(err.Error(), "is not a namespace name") {
			t.Errorf("parseNamespaces(%q) error = %v, want a refusal naming the bad name", in, err)
		}
	}
}
