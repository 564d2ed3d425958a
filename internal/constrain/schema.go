package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Supported JSON Schema keywords, by what they constrain. Anything else is
// refused with an error naming it.
var (
	annotationKeywords = set("$schema", "$id", "$comment", "title", "description", "examples",
		"default", "deprecated", "readOnly", "writeOnly", "$defs", "definitions")
	objectKeywords  = set("properties", "required", "additionalProperties")
	arrayKeywords   = set("items", "minItems", "maxItems")
	stringKeywords  = set("minLength", "maxLength", "pattern", "format")
	integerKeywords = set("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
	otherKeywords   = set("type", "enum", "const", "anyOf", "allOf", "$ref")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// formatPatterns are the string formats supported, as regular expressions
// whose every match passes the format's check (RFC 3339 dates and times
// without leap seconds and without 29 February, a conservative subset of
// e-mail addresses, RFC 4122 UUIDs).
var formatPatterns = map[string]string{
	"date":      dateRE,
	"time":      timeRE,
	"date-time": dateRE + "T" + timeRE,
	"email":     `[a-zA-Z0-9_%+-]{1,20}(\.[a-zA-Z0-9_%+-]{1,20}){0,2}@[a-zA-Z0-9]{1,20}(\.[a-zA-Z0-9]{1,20}){1,3}`,
	"uuid":      `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`,
}

const (
	dateRE = `[0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)`
	timeRE = `([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])`
)

// Bounds of integers without minimum or maximum (the digit bound).
const maxAbsInt = 9_999_999_999_999_999 // 16 digits

// omap is a JSON object that keeps its keys' order (properties are
// generated in the order the schema lists them).
type omap struct {
	keys []string
	vals map[string]any
}

func (o *omap) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// decodeOrdered decodes one JSON value with objects as *omap and numbers as
// json.Number.
func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &omap{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
	}
	return tok, nil
}

// schemaURL names the schema document for the validator library.
const schemaURL = "urn:snapvlm:schema.json"

// schemaCompiler turns a JSON Schema into rules.
type schemaCompiler struct {
	b     *builder
	doc   any
	rules map[string]int // JSON pointer → rule
	json  *jsonRules     // generic JSON, added on first use
	lib   *jsonschema.Compiler
}

// schemaProgram compiles a JSON Schema: the output is optional leading
// whitespace and a JSON text that validates against it.
func schemaProgram(src []byte) (*program, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	doc, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("json schema: data after the schema")
	}
	libDoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	lib := jsonschema.NewCompiler()
	if err := lib.AddResource(schemaURL, libDoc); err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	if _, err := lib.Compile(schemaURL); err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	c := &schemaCompiler{b: newBuilder(), doc: doc, rules: map[string]int{}, lib: lib}
	root, err := c.schema("")
	if err != nil {
		return nil, err
	}
	p, err := c.b.finish(seq(ws(), eCall(root)))
	if err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	return p, nil
}

func (c *schemaCompiler) jsonRules() jsonRules {
	if c.json == nil {
		r := addJSONRules(c.b)
		c.json = &r
	}
	return *c.json
}

// where names a schema location in errors.
func where(ptr string) string { return "#" + ptr }

// resolve returns the value at a JSON pointer of the document.
func (c *schemaCompiler) resolve(ptr string) (any, error) {
	v := c.doc
	if ptr == "" {
		return v, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("json schema: $ref %q: only references inside the document (#/...) are supported", "#"+ptr)
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case *omap:
			var ok bool
			if v, ok = x.get(tok); !ok {
				return nil, fmt.Errorf("json schema: $ref %s: no %q", where(ptr), tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("json schema: $ref %s: no item %q", where(ptr), tok)
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("json schema: $ref %s: %q is inside a scalar", where(ptr), tok)
		}
	}
	return v, nil
}

func ptrJoin(ptr string, toks ...string) string {
	for _, t := range toks {
		ptr += "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(t)
	}
	return ptr
}

// schema returns the rule of the schema at ptr, compiling it once.
func (c *schemaCompiler) schema(ptr string) (int, error) {
	if r, ok := c.rules[ptr]; ok {
		return r, nil
	}
	r := c.b.rule("the schema at " + where(ptr))
	c.rules[ptr] = r
	node, err := c.resolve(ptr)
	if err != nil {
		return 0, err
	}
	body, err := c.body(node, ptr)
	if err != nil {
		return 0, err
	}
	c.b.define(r, body)
	return r, nil
}

// body is the grammar of one schema node.
func (c *schemaCompiler) body(node any, ptr string) (expr, error) {
	switch n := node.(type) {
	case bool:
		if !n {
			return nil, fmt.Errorf("json schema: %s is false: nothing can match it", where(ptr))
		}
		return eCall(c.jsonRules().value), nil
	case *omap:
		return c.object(n, ptr)
	}
	return nil, fmt.Errorf("json schema: %s is not a schema (want an object or a boolean)", where(ptr))
}

// constraining returns the keywords of n other than annotations.
func constraining(n *omap) []string {
	var ks []string
	for _, k := range n.keys {
		if !annotationKeywords[k] {
			ks = append(ks, k)
		}
	}
	return ks
}

func (c *schemaCompiler) object(n *omap, ptr string) (expr, error) {
	var unsupported []string
	for _, k := range n.keys {
		if !annotationKeywords[k] && !objectKeywords[k] && !arrayKeywords[k] && !stringKeywords[k] &&
			!integerKeywords[k] && !otherKeywords[k] {
			unsupported = append(unsupported, strconv.Quote(k))
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("json schema: %s: unsupported keyword(s) %s", where(ptr), strings.Join(unsupported, ", "))
	}
	keys := constraining(n)
	alone := func(kw string) error {
		if len(keys) > 1 {
			others := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == kw })
			return fmt.Errorf("json schema: %s: %s together with %s is not supported", where(ptr), strconv.Quote(kw), quoteAll(others))
		}
		return nil
	}
	if ref, ok := n.get("$ref"); ok {
		if err := alone("$ref"); err != nil {
			return nil, err
		}
		s, ok := ref.(string)
		if !ok || !strings.HasPrefix(s, "#") {
			return nil, fmt.Errorf("json schema: %s: $ref %v: only references inside the document (#/...) are supported", where(ptr), ref)
		}
		target, err := url.PathUnescape(s[1:])
		if err != nil {
			return nil, fmt.Errorf("json schema: %s: $ref %q: %w", where(ptr), s, err)
		}
		r, err := c.schema(target)
		if err != nil {
			return nil, err
		}
		return eCall(r), nil
	}
	for _, kw := range []string{"anyOf", "allOf"} {
		v, ok := n.get(kw)
		if !ok {
			continue
		}
		if err := alone(kw); err != nil {
			return nil, err
		}
		subs, _ := v.([]any)
		if kw == "allOf" && len(subs) != 1 {
			return nil, fmt.Errorf("json schema: %s: allOf with %d schemas is not supported (only one)", where(ptr), len(subs))
		}
		var alts []expr
		for i := range subs {
			r, err := c.schema(ptrJoin(ptr, kw, strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			alts = append(alts, eCall(r))
		}
		return eAlt(alts), nil
	}
	if _, ok := n.get("enum"); ok {
		return c.enum(n, ptr)
	}
	if _, ok := n.get("const"); ok {
		return c.enum(n, ptr)
	}
	types, err := c.types(n, ptr)
	if err != nil {
		return nil, err
	}
	var alts []expr
	for _, t := range types {
		x, err := c.typed(t, n, ptr)
		if err != nil {
			return nil, err
		}
		alts = append(alts, x)
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return eAlt(alts), nil
}

func quoteAll(ks []string) string {
	q := make([]string, len(ks))
	for i, k := range ks {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

// types returns the types a schema allows: its "type", or the one its
// keywords imply, or all of them.
func (c *schemaCompiler) types(n *omap, ptr string) ([]string, error) {
	if t, ok := n.get("type"); ok {
		switch t := t.(type) {
		case string:
			return []string{t}, nil
		case []any:
			var ts []string
			for _, x := range t {
				s, _ := x.(string)
				ts = append(ts, s)
			}
			return ts, nil
		}
		return nil, fmt.Errorf("json schema: %s: type must be a string or an array of strings", where(ptr))
	}
	var implied []string
	for _, fam := range []struct {
		name string
		kws  map[string]bool
	}{{"object", objectKeywords}, {"array", arrayKeywords}, {"string", stringKeywords}, {"integer", integerKeywords}} {
		for _, k := range n.keys {
			if fam.kws[k] {
				implied = append(implied, fam.name)
				break
			}
		}
	}
	switch len(implied) {
	case 0:
		return []string{"any"}, nil
	case 1:
		return implied, nil
	}
	return nil, fmt.Errorf("json schema: %s: keywords of several types (%s) without \"type\"; give the type", where(ptr), strings.Join(implied, ", "))
}

// typed is the grammar of the instances of one type under n's keywords.
func (c *schemaCompiler) typed(t string, n *omap, ptr string) (expr, error) {
	switch t {
	case "any":
		return eCall(c.jsonRules().value), nil
	case "null":
		return eLit("null"), nil
	case "boolean":
		return alt(eLit("true"), eLit("false")), nil
	case "integer":
		return c.integer(n, ptr)
	case "number":
		for _, k := range n.keys {
			if integerKeywords[k] {
				return nil, fmt.Errorf("json schema: %s: %q on numbers is not supported (only on integers)", where(ptr), k)
			}
		}
		return jsonNumber(), nil
	case "string":
		return c.str(n, ptr)
	case "array":
		return c.array(n, ptr)
	case "object":
		return c.obj(n, ptr)
	}
	return nil, fmt.Errorf("json schema: %s: unknown type %q", where(ptr), t)
}

// intKeyword returns a non-negative integer keyword, or def if absent.
func intKeyword(n *omap, ptr, kw string, def int) (int, error) {
	v, ok := n.get(kw)
	if !ok {
		return def, nil
	}
	num, _ := v.(json.Number)
	i, err := strconv.Atoi(string(num))
	if err != nil || i < 0 {
		return 0, fmt.Errorf("json schema: %s: %s must be a non-negative integer, got %v", where(ptr), kw, v)
	}
	return i, nil
}

// maxRepeat bounds minLength, maxLength, minItems and maxItems, which expand
// into that many copies of a character or item.
const maxRepeat = 4096

func bounds(n *omap, ptr, minKw, maxKw string) (lo, hi int, err error) {
	if lo, err = intKeyword(n, ptr, minKw, 0); err != nil {
		return
	}
	if hi, err = intKeyword(n, ptr, maxKw, -1); err != nil {
		return
	}
	if hi >= 0 && hi < lo {
		return 0, 0, fmt.Errorf("json schema: %s: %s %d is above %s %d: nothing can match", where(ptr), minKw, lo, maxKw, hi)
	}
	if lo > maxRepeat || hi > maxRepeat {
		return 0, 0, fmt.Errorf("json schema: %s: %s/%s above %d are not supported", where(ptr), minKw, maxKw, maxRepeat)
	}
	return lo, hi, nil
}

func (c *schemaCompiler) str(n *omap, ptr string) (expr, error) {
	lo, hi, err := bounds(n, ptr, "minLength", "maxLength")
	if err != nil {
		return nil, err
	}
	_, hasLen := n.get("minLength")
	if _, ok := n.get("maxLength"); ok {
		hasLen = true
	}
	pat, hasPat := n.get("pattern")
	format, hasFormat := n.get("format")
	if hasPat && hasFormat {
		return nil, fmt.Errorf("json schema: %s: pattern together with format is not supported", where(ptr))
	}
	if hasFormat {
		f, _ := format.(string)
		p, ok := formatPatterns[f]
		if !ok {
			return nil, fmt.Errorf("json schema: %s: format %q is not supported (only date, time, date-time, email, uuid)", where(ptr), f)
		}
		pat, hasPat = p, true
	}
	if !hasPat {
		return jsonString(lo, hi), nil
	}
	if hasLen {
		return nil, fmt.Errorf("json schema: %s: pattern or format together with minLength/maxLength is not supported", where(ptr))
	}
	s, _ := pat.(string)
	re, err := parseRegex(s)
	if err != nil {
		return nil, fmt.Errorf("json schema: %s: %w", where(ptr), err)
	}
	x, err := regexExpr(re, jsonChars)
	if err != nil {
		return nil, fmt.Errorf("json schema: %s: %w", where(ptr), err)
	}
	return seq(eLit(`"`), x, eLit(`"`)), nil
}

func (c *schemaCompiler) array(n *omap, ptr string) (expr, error) {
	lo, hi, err := bounds(n, ptr, "minItems", "maxItems")
	if err != nil {
		return nil, err
	}
	item := eCall(c.jsonRules().value)
	if _, ok := n.get("items"); ok {
		r, err := c.schema(ptrJoin(ptr, "items"))
		if err != nil {
			return nil, err
		}
		item = eCall(r)
	}
	if hi == 0 {
		return seq(eLit("["), ws(), eLit("]")), nil
	}
	more := -1
	if hi > 0 {
		more = hi - 1
	}
	items := seq(item, rep(seq(ws(), eLit(","), ws(), item), max(lo-1, 0), more), ws(), eLit("]"))
	if lo == 0 {
		return seq(eLit("["), ws(), alt(eLit("]"), items)), nil
	}
	return seq(eLit("["), ws(), items), nil
}

func (c *schemaCompiler) obj(n *omap, ptr string) (expr, error) {
	var props *omap
	if p, ok := n.get("properties"); ok {
		if props, ok = p.(*omap); !ok {
			return nil, fmt.Errorf("json schema: %s: properties must be an object", where(ptr))
		}
	}
	required := map[string]bool{}
	if r, ok := n.get("required"); ok {
		list, _ := r.([]any)
		for _, x := range list {
			s, _ := x.(string)
			if props == nil || !slices.Contains(props.keys, s) {
				return nil, fmt.Errorf("json schema: %s: required property %q is not in properties", where(ptr), s)
			}
			required[s] = true
		}
	}
	addl, hasAddl := n.get("additionalProperties")
	addlFalse := hasAddl && addl == false
	if props == nil || len(props.keys) == 0 {
		switch {
		case addlFalse:
			return seq(eLit("{"), ws(), eLit("}")), nil
		case !hasAddl || addl == true:
			return eCall(c.jsonRules().object), nil
		}
		// A map: any keys, values of one schema.
		r, err := c.schema(ptrJoin(ptr, "additionalProperties"))
		if err != nil {
			return nil, err
		}
		member := seq(eCall(c.jsonRules().str), ws(), eLit(":"), ws(), eCall(r))
		return seq(eLit("{"), ws(), alt(
			eLit("}"),
			seq(member, rep(seq(ws(), eLit(","), ws(), member), 0, -1), ws(), eLit("}")),
		)), nil
	}
	if hasAddl && addl != true && !addlFalse {
		return nil, fmt.Errorf("json schema: %s: additionalProperties as a schema together with properties is not supported", where(ptr))
	}
	// Declared properties in their order, optional ones omissible; extra
	// properties are never generated (a subset of what true allows).
	// first[i]: members i.. when none was written yet; after[i]: when one
	// was (a comma comes first).
	k := len(props.keys)
	first := make([]int, k+1)
	after := make([]int, k+1)
	for i := range first {
		first[i] = c.b.rule(fmt.Sprintf("the properties of %s", where(ptr)))
		after[i] = c.b.rule(fmt.Sprintf("the properties of %s", where(ptr)))
	}
	c.b.define(first[k], eLit("}"))
	c.b.define(after[k], eLit("}"))
	for i := k - 1; i >= 0; i-- {
		name := props.keys[i]
		r, err := c.schema(ptrJoin(ptr, "properties", name))
		if err != nil {
			return nil, err
		}
		kv := seq(eLit(jsonText(name)), ws(), eLit(":"), ws(), eCall(r), ws())
		if required[name] {
			c.b.define(first[i], seq(kv, eCall(after[i+1])))
			c.b.define(after[i], seq(eLit(","), ws(), kv, eCall(after[i+1])))
		} else {
			c.b.define(first[i], alt(seq(kv, eCall(after[i+1])), eCall(first[i+1])))
			c.b.define(after[i], alt(seq(eLit(","), ws(), kv, eCall(after[i+1])), eCall(after[i+1])))
		}
	}
	return seq(eLit("{"), ws(), eCall(first[0])), nil
}

// jsonText is v as compact JSON, without HTML escaping.
func jsonText(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(buf.String(), "\n")
}

// plain turns a decoded value back into encoding/json's types.
func plain(v any) any {
	switch x := v.(type) {
	case *omap:
		m := make(map[string]any, len(x.keys))
		for _, k := range x.keys {
			m[k] = plain(x.vals[k])
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = plain(e)
		}
		return a
	}
	return v
}

// enum is the grammar of enum or const: their values, written as compact
// JSON, that also satisfy the rest of the schema (checked with the
// validator library against this schema location).
func (c *schemaCompiler) enum(n *omap, ptr string) (expr, error) {
	var values []any
	if v, ok := n.get("const"); ok {
		values = append(values, v)
	}
	if v, ok := n.get("enum"); ok {
		list, _ := v.([]any)
		values = append(values, list...)
	}
	sch, err := c.lib.Compile(schemaURL + "#" + ptr)
	if err != nil {
		return nil, fmt.Errorf("json schema: %s: %w", where(ptr), err)
	}
	var alts []expr
	seen := map[string]bool{}
	for _, v := range values {
		text := jsonText(plain(v))
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil || sch.Validate(inst) != nil || seen[text] {
			continue
		}
		seen[text] = true
		alts = append(alts, eLit(text))
	}
	if len(alts) == 0 {
		return nil, fmt.Errorf("json schema: %s: no enum/const value satisfies the schema", where(ptr))
	}
	return eAlt(alts), nil
}

// integer is the grammar of integers within minimum/maximum (and the
// exclusive forms), or within the digit bound.
func (c *schemaCompiler) integer(n *omap, ptr string) (expr, error) {
	lo, hi := big.NewRat(-maxAbsInt, 1), big.NewRat(maxAbsInt, 1)
	has := false
	for _, kw := range []string{"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"} {
		v, ok := n.get(kw)
		if !ok {
			continue
		}
		has = true
		num, _ := v.(json.Number)
		r, ok := new(big.Rat).SetString(string(num))
		if !ok {
			return nil, fmt.Errorf("json schema: %s: %s must be a number, got %v", where(ptr), kw, v)
		}
		// Round inward to the nearest allowed integer.
		switch kw {
		case "minimum", "exclusiveMinimum":
			b := ceilRat(r)
			if kw == "exclusiveMinimum" && r.IsInt() {
				b.Add(b, big.NewInt(1))
			}
			if br := new(big.Rat).SetInt(b); br.Cmp(lo) > 0 {
				lo = br
			}
		default:
			b := floorRat(r)
			if kw == "exclusiveMaximum" && r.IsInt() {
				b.Sub(b, big.NewInt(1))
			}
			if br := new(big.Rat).SetInt(b); br.Cmp(hi) < 0 {
				hi = br
			}
		}
	}
	if !has {
		return jsonInteger(), nil
	}
	if lo.Cmp(hi) > 0 {
		return nil, fmt.Errorf("json schema: %s: no integer lies within minimum/maximum (and the %d-digit bound)", where(ptr), maxIntDigits)
	}
	return intRange(lo.Num().Int64(), hi.Num().Int64()), nil
}

func floorRat(r *big.Rat) *big.Int {
	q := new(big.Int)
	m := new(big.Int)
	q.DivMod(r.Num(), r.Denom(), m) // Euclidean: floor for a positive divisor
	return q
}

func ceilRat(r *big.Rat) *big.Int {
	q := floorRat(r)
	if !r.IsInt() {
		q.Add(q, big.NewInt(1))
	}
	return q
}
