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

// Path resolves a script reference against the connector file's
// directory (dir); an absolute reference, or an empty dir, is kept as is.
func Path(dir, ref string) string {
	if ref == "" || dir == "" || filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(dir, ref)
}
