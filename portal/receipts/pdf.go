package receipts

import (
	"fmt"

	"github.com/johnfercher/maroto/v2"
	"github.com/johnfercher/maroto/v2/pkg/components/col"
	"github.com/johnfercher/maroto/v2/pkg/components/line"
	"github.com/johnfercher/maroto/v2/pkg/components/row"
	"github.com/johnfercher/maroto/v2/pkg/components/text"
	"github.com/johnfercher/maroto/v2/pkg/config"
	"github.com/johnfercher/maroto/v2/pkg/consts/align"
	"github.com/johnfercher/maroto/v2/pkg/consts/fontstyle"
	"github.com/johnfercher/maroto/v2/pkg/consts/pagesize"
	"github.com/johnfercher/maroto/v2/pkg/core"
	"github.com/johnfercher/maroto/v2/pkg/props"
	"github.com/johnfercher/maroto/v2/pkg/repository"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// The PDF's text is set in the Go fonts (embedded, subset), not in the PDF's built-in
// Helvetica: those know only Windows-1252, and a customer's legal name, address or the
// merchant's may hold any letter. The Go fonts cover Latin, Greek and Cyrillic, "•" and "−".
const fontFamily = "go"

var (
	grey  = &props.Color{Red: 90, Green: 90, Blue: 90}
	black = &props.Color{}
)

// PDF renders the receipt as an A4 PDF in locale ("es" or "en"). It carries the receipt's text
// as text (not pictures of it), so readers can search and copy it, and assistive technology can
// read it.
func (r Receipt) PDF(locale string) ([]byte, error) {
	d := r.Document(locale)
	fonts, err := repository.New().
		AddUTF8FontFromBytes(fontFamily, fontstyle.Normal, goregular.TTF).
		AddUTF8FontFromBytes(fontFamily, fontstyle.Bold, gobold.TTF).
		Load()
	if err != nil {
		return nil, fmt.Errorf("receipt fonts: %w", err)
	}
	cfg := config.NewBuilder().
		WithPageSize(pagesize.A4).
		WithLeftMargin(20).WithRightMargin(20).WithTopMargin(18).
		WithCustomFonts(fonts).
		WithDefaultFont(&props.Font{Family: fontFamily, Size: 10, Color: black}).
		WithTitle(d.Title+" "+r.Payment.ID, true).
		WithSubject(d.Title, true).
		WithAuthor(r.Merchant.LegalName, true).
		WithCreator("Portero", true).
		// The payment's own moment, not the hour of the download: the same receipt is the same
		// document whenever it is fetched.
		WithCreationDate(r.PaidAt).
		WithSequentialMode().
		Build()
	m := maroto.New(cfg)

	// Heading: the issuer on the left, what the document is on the right.
	m.AddAutoRow(
		text.NewCol(7, d.Merchant.Lines[0], props.Text{Size: 14, Style: fontstyle.Bold}),
		text.NewCol(5, d.Title, props.Text{Size: 14, Style: fontstyle.Bold, Align: align.Right}),
	)
	sub := ""
	if len(d.Merchant.Lines) > 1 {
		sub = d.Merchant.Lines[1]
	}
	m.AddAutoRow(
		text.NewCol(7, sub, props.Text{Top: 1, Color: grey}),
		text.NewCol(5, d.Notice, props.Text{Top: 1, Style: fontstyle.Bold, Align: align.Right, Color: grey}),
	)
	m.AddRows(spacer(4), line.NewRow(1, props.Line{Thickness: 0.3, Color: grey, SizePercent: 100}), spacer(4))

	// The amount first: it is what the receipt is for.
	m.AddAutoRow(
		text.NewCol(6, d.AmountLabel, props.Text{Size: 11, Top: 2, Color: grey}),
		text.NewCol(6, d.Amount, props.Text{Size: 18, Style: fontstyle.Bold, Align: align.Right}),
	)
	m.AddRows(spacer(6))
	for _, f := range d.Facts {
		m.AddAutoRow(
			text.NewCol(4, f.Label, props.Text{Color: grey, Bottom: 2}),
			text.NewCol(8, f.Value, props.Text{Bottom: 2}),
		)
	}
	m.AddRows(spacer(4), line.NewRow(1, props.Line{Thickness: 0.3, Color: grey, SizePercent: 100}), spacer(4))

	// Who paid whom, side by side, line by line: a row is as tall as its longer line, so a
	// long name wraps without running into the next.
	heading := props.Text{Style: fontstyle.Bold, Size: 9, Color: grey, Bottom: 1.5}
	m.AddAutoRow(text.NewCol(6, d.Merchant.Heading, heading), text.NewCol(6, d.Customer.Heading, heading))
	for i := range max(len(d.Merchant.Lines), len(d.Customer.Lines)) {
		m.AddAutoRow(partyLine(d.Merchant, i), partyLine(d.Customer, i))
	}
	m.AddRows(spacer(10))
	m.AddAutoRow(text.NewCol(12, d.Footer, props.Text{Size: 8, Color: grey}))

	doc, err := m.Generate()
	if err != nil {
		return nil, fmt.Errorf("render receipt %s: %w", r.Payment.ID, err)
	}
	return doc.GetBytes(), nil
}

// partyLine is line i of a party as a column, empty past its last line.
func partyLine(p Party, i int) core.Col {
	if i >= len(p.Lines) {
		return col.New(6)
	}
	return text.NewCol(6, p.Lines[i], props.Text{Right: 4, Bottom: 1})
}

func spacer(h float64) core.Row { return row.New(h) }
