package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// decodeJSON reads an optional JSON object body into v. Unknown fields,
// wrong types, trailing data and bodies over limit are refused with a
// message that says which. An empty body leaves v untouched, because the
// old API took the same fields as query parameters.
func decodeJSON(c echo.Context, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest("request body exceeds %d bytes", limit)
		}
		return badRequest("reading request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) > 0 && !isJSON(c.Request().Header.Get("Content-Type")) {
		// A body in another type is what an HTML form or a no-preflight
		// cross-site fetch sends; refusing it closes that door too.
		return errUnsupportedMedia
	}
	return decodeJSONBytes(body, v)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func decodeJSONBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("unexpected data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "request body must be a JSON object"
		}
		return "field " + typ.Field + " must be a " + jsonKind(typ.Type.Kind().String())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "boolean"
	case "string":
		return "string"
	case "ptr":
		return "value of the documented type"
	}
	return goKind
}

// fillFromQuery sets each nil *string or *bool field of the struct v points
// to from the query parameter named by its json tag. The old service took
// its fields as query parameters; a field set in the body wins.
func fillFromQuery(c echo.Context, v any) error {
	rv := reflect.ValueOf(v).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f, field := rv.Field(i), rv.Type().Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		// Lists (such as stores) have their own query syntax; see storesQuery.
		if f.Kind() != reflect.Pointer || !f.IsNil() || name == "" {
			continue
		}
		switch field.Type.Elem().Kind() {
		case reflect.String:
			if s := queryString(c, name); s != nil {
				f.Set(reflect.ValueOf(s))
			}
		case reflect.Bool:
			b, err := queryBool(c, name)
			if err != nil {
				return err
			}
			if b != nil {
				f.Set(reflect.ValueOf(b))
			}
		}
	}
	return nil
}

// queryBool reads an optional boolean query parameter.
func queryBool(c echo.Context, name string) (*bool, error) {
	raw, ok := c.QueryParams()[name]
	if !ok || len(raw) == 0 || raw[0] == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(raw[0])
	if err != nil {
		return nil, badRequest("query parameter %s: want true or false, got %q", name, truncate(raw[0], 40))
	}
	return &b, nil
}

// queryString reads an optional string query parameter.
func queryString(c echo.Context, name string) *string {
	raw, ok := c.QueryParams()[name]
	if !ok || len(raw) == 0 {
		return nil
	}
	return &raw[0]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
