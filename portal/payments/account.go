package payments

import "strings"

// Argentine bank account keys (BCRA Comunicación "A" 2797 for the CBU, "A" 6425/6510 for the
// CVU). Both are 22 digits in two blocks, each closed by a check digit:
//
//	block 1 (8 digits):  bank (3) + branch (4) + check digit
//	block 2 (14 digits): account (13) + check digit
//
// A CVU (clave virtual uniforme, issued by payment service providers such as wallets) uses the
// same check-digit algorithm and always starts with "000", which is no bank's code.

// cbuCheckDigit computes a block's check digit from its leading digits and weights.
func cbuCheckDigit(digits string, weights []int) byte {
	sum := 0
	for i, w := range weights {
		sum += int(digits[i]-'0') * w
	}
	return byte('0' + (10-sum%10)%10)
}

// cbuCheckDigitsOK validates both blocks of a 22-digit key.
func cbuCheckDigitsOK(d string) bool {
	block1Weights := []int{7, 1, 3, 9, 7, 1, 3}
	block2Weights := []int{3, 9, 7, 1, 3, 9, 7, 1, 3, 9, 7, 1, 3}
	return cbuCheckDigit(d[0:7], block1Weights) == d[7] &&
		cbuCheckDigit(d[8:21], block2Weights) == d[21]
}

// ParseCBU normalises a CBU (spaces and dashes removed) and validates its length and both check
// digits. A CVU is refused with CodeCBUIsCVU so the customer can be told to pick the right type.
func ParseCBU(s string) (string, error) {
	d, ok := digitsOnly(s)
	if !ok {
		return "", newError(CodeInvalidCBUCharacters, "cbu")
	}
	if len(d) != 22 {
		return "", newError(CodeInvalidCBULength, "cbu")
	}
	// Before the CVU test: an all-zero key starts with 000 too, and is neither.
	if placeholderAccount(d) {
		return "", newError(CodePlaceholderCBU, "cbu")
	}
	if d[:3] == "000" {
		return "", newError(CodeCBUIsCVU, "cbu")
	}
	if !cbuCheckDigitsOK(d) {
		return "", newError(CodeInvalidCBUCheckDigit, "cbu")
	}
	return d, nil
}

// ParseCVU normalises a CVU and validates its length, its "000" prefix and both check digits.
func ParseCVU(s string) (string, error) {
	d, ok := digitsOnly(s)
	if !ok {
		return "", newError(CodeInvalidCVUCharacters, "cvu")
	}
	if len(d) != 22 {
		return "", newError(CodeInvalidCVULength, "cvu")
	}
	if placeholderAccount(d) {
		return "", newError(CodePlaceholderCVU, "cvu")
	}
	if d[:3] != "000" {
		return "", newError(CodeInvalidCVUPrefix, "cvu")
	}
	if !cbuCheckDigitsOK(d) {
		return "", newError(CodeInvalidCVUCheckDigit, "cvu")
	}
	return d, nil
}

// placeholderAccount reports a 22-digit key whose account number (the first 13 digits of the
// second block) is zero, the all-zero key included. Zeros weigh nothing in either block's sum,
// so such a key passes its check digits (0 for a zero block) while naming no account: it is what
// gets typed to get past a form, and the bank or wallet would refuse it at the first debit.
func placeholderAccount(d string) bool {
	return strings.Trim(d[8:21], "0") == ""
}

// MaskAccount shows only the last four digits of a CBU/CVU (or any identifier), for display:
// a CBU is not a secret in Argentina, but nobody needs to see all of it on a screen.
func MaskAccount(s string) string {
	if len(s) <= 4 {
		return "••••"
	}
	return "•••• " + s[len(s)-4:]
}

// ParseCUIT normalises and validates a CUIT or CUIL (they share the format): 11 digits, a
// known type prefix (20, 23, 24, 27 for people; 30, 33, 34 for companies) and AFIP's mod-11
// check digit. When 11 - sum mod 11 is 11 the check digit is 0; when it is 10 no valid number
// exists with that prefix (AFIP issues it under 23 or 33 instead), so it is rejected.
func ParseCUIT(s string) (string, error) {
	d, ok := digitsOnly(s)
	if !ok {
		return "", newError(CodeInvalidCUITCharacters, "tax_id")
	}
	if len(d) != 11 {
		return "", newError(CodeInvalidCUITLength, "tax_id")
	}
	switch d[:2] {
	case "20", "23", "24", "27", "30", "33", "34":
	default:
		return "", newError(CodeInvalidCUITPrefix, "tax_id")
	}
	want, ok := cuitCheckDigit(d[:10])
	if !ok || want != d[10] {
		return "", newError(CodeInvalidCUITCheckDigit, "tax_id")
	}
	return d, nil
}

// cuitCheckDigit returns the check digit for the first ten digits, ok=false when none exists.
func cuitCheckDigit(first10 string) (byte, bool) {
	// AFIP's weights for the first ten digits.
	weights := [10]int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i, w := range weights {
		sum += int(first10[i]-'0') * w
	}
	switch r := 11 - sum%11; r {
	case 11:
		return '0', true
	case 10:
		return 0, false
	default:
		return byte('0' + r), true
	}
}

// FormatCUIT renders a normalised CUIT as printed on invoices: "20-12345678-6". Other input is
// returned unchanged.
func FormatCUIT(d string) string {
	if len(d) != 11 {
		return d
	}
	return d[:2] + "-" + d[2:10] + "-" + d[10:]
}
