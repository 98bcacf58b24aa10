package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// maxBodyBytes bounds a request body. The largest legitimate body (a customer with a full
// billing profile) is a few hundred bytes.
const maxBodyBytes = 64 << 10

// decodeJSON reads exactly one JSON object into dst, refusing what a careless or hostile client
// might send: another content type, an oversized body, unknown fields (a typo would otherwise be
// silently ignored), wrong types, and trailing data. It never echoes input back, because the
// input may hold a card number.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	if e := requireJSON(r); e != nil {
		return e
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		e := decodeError(err)
		if e.code == CodeUnknownField {
			// encoding/json names only the key; the path says where it is ("billing.address.street").
			e.field = unknownFieldPath(raw, reflect.TypeOf(dst), "")
		}
		return e
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, CodeMalformedJSON, "",
			"The request body must hold exactly one JSON object; something follows it.",
			"El cuerpo de la solicitud debe tener exactamente un objeto JSON; hay algo después.")
	}
	return nil
}

// decodeOptionalJSON is decodeJSON for endpoints whose body may be left out entirely (cancel,
// confirm): an empty body keeps dst's zero value.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	return decodeJSON(w, r, dst)
}

// requireJSON checks the Content-Type is application/json (parameters such as charset allowed).
func requireJSON(r *http.Request) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "",
			"Send the request body as JSON with \"Content-Type: application/json\".",
			"Enviá el cuerpo de la solicitud como JSON con \"Content-Type: application/json\".")
	}
	return nil
}

// decodeError explains a json.Decoder failure without quoting the input.
func decodeError(err error) *apiError {
	var (
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		malformed = func(en, es string) *apiError {
			return newError(http.StatusBadRequest, CodeMalformedJSON, "", en, es)
		}
	)
	switch {
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "",
			"The request body is larger than "+strconv.Itoa(maxBodyBytes/1024)+" KiB.",
			"El cuerpo de la solicitud supera los "+strconv.Itoa(maxBodyBytes/1024)+" KiB.")
	case errors.Is(err, io.EOF):
		return malformed("The request body is empty; send a JSON object.",
			"El cuerpo de la solicitud está vacío; enviá un objeto JSON.")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("The request body is not valid JSON.", "El cuerpo de la solicitud no es JSON válido.")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return malformed("The request body must be a JSON object.", "El cuerpo de la solicitud debe ser un objeto JSON.")
		}
		return errInvalidField(typ.Field,
			"The field "+typ.Field+" must be "+jsonTypeName(typ.Type.Kind().String())+".",
			"El campo "+typ.Field+" debe ser "+jsonTypeNameES(typ.Type.Kind().String())+".")
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return newError(http.StatusBadRequest, CodeUnknownField, field,
			"The field "+field+" is not part of this request; check its spelling against /api/v1/openapi.json.",
			"El campo "+field+" no es parte de esta solicitud; revisá cómo se escribe en /api/v1/openapi.json.")
	}
	return malformed("The request body is not valid JSON.", "El cuerpo de la solicitud no es JSON válido.")
}

// unknownFieldPath finds the first key of raw that t (a struct, or pointer to one) does not
// declare, as a dotted path. raw is known to be one valid JSON object here.
func unknownFieldPath(raw []byte, t reflect.Type, prefix string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var obj map[string]json.RawMessage
	if t.Kind() != reflect.Struct || json.Unmarshal(raw, &obj) != nil {
		return strings.TrimSuffix(prefix, ".")
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		fields[name] = t.Field(i).Type
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			// encoding/json matches keys case-insensitively; so does this lookup.
			for name, typ := range fields {
				if strings.EqualFold(name, k) {
					ft, ok = typ, true
				}
			}
		}
		if !ok {
			return prefix + k
		}
		if p := unknownFieldPath(obj[k], ft, prefix+k+"."); p != strings.TrimSuffix(prefix+k+".", ".") {
			return p
		}
	}
	return strings.TrimSuffix(prefix, ".")
}

func jsonTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice":
		return "an array"
	}
	return "an object"
}

func jsonTypeNameES(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "un número entero"
	case kind == "string":
		return "un texto"
	case kind == "bool":
		return "true o false"
	case kind == "slice":
		return "una lista"
	}
	return "un objeto"
}
