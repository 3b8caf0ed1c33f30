package script

import (
	"path/filepath"
	"strings"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Ext is the file extension that marks an "extension" as a script.
const Ext = ".star"

// Ref reads a converter object's script: its "script" key, or else an
// "extension" that names a .star file (so an upstream file switches by
// changing only the extension's name). Empty: the converter has no script.
func Ref(c *spec.Obj, extension string) string {
	if s := c.Str("script", ""); s != "" {
		return s
	}
	if strings.HasSuffix(extension, Ext) {
		return extension
	}
	return ""
}

// Converter types that take a script.
const (
	TypeCustom = "custom"
	TypeScript = "script"
)

// ParseRef reads the script of a converter object of type typ (whose
// extension the caller has read) and checks it: a custom converter needs
// an extension or a script, a script converter a script, and the other
// types take none. Problems are recorded in c.
func ParseRef(c *spec.Obj, typ, extension string) string {
	ref := Ref(c, extension)
	switch {
	case typ == TypeCustom && extension == "" && ref == "":
		c.Errorf("extension", "is required for a custom converter (or \"script\": a Starlark file)")
	case typ == TypeScript && ref == "":
		c.Errorf("script", "is required for a script converter (a Starlark file)")
	case ref != "" && typ != TypeCustom && typ != TypeScript:
		c.Errorf("script", "%q is only read by a custom or script converter, not %s", ref, typ)
	}
	return ref
}

// Path resolves a script reference against the connector file's
// directory (dir); an absolute reference, or an empty dir, is kept as is.
func Path(dir, ref string) string {
	if ref == "" || dir == "" || filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(dir, ref)
}

// CommandRef reads a command entry's "script" (an attributeUpdates or
// serverSideRpc entry whose downlink(cmd) builds what to send). With a
// script, the keys it replaces (what the entry would otherwise render the
// message from) are errors when given: the file would say two things.
func CommandRef(o *spec.Obj, replaces ...string) string {
	ref := o.Str("script", "")
	if ref == "" {
		return ""
	}
	for _, k := range replaces {
		if o.Has(k) {
			o.Errorf(k, "is not used with \"script\": the script's downlink(cmd) returns what to send")
		}
		o.Known(k)
	}
	return ref
}
