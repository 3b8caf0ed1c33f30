package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// LogsFileName is upstream's logging configuration (a Python logging
// dictConfig), read from the directory of the main file.
const LogsFileName = "logs.json"

// EnvLogsPath replaces the directory of every log file, as upstream's
// rotating handler does.
const EnvLogsPath = "TB_GW_LOGS_PATH"

// LogFile is a file handler of logs.json: where the log goes and when it
// rotates.
type LogFile struct {
	Path    string // absolute
	Handler string // handler name in logs.json, for messages
	// Level is the handler's own minimum (zerolog name); "" passes whatever
	// the logger passes (Python's NOTSET).
	Level string
	// MaxBytes rotates the file before a line would take it to this size;
	// 0 never rotates on size.
	MaxBytes int64
	// BackupCount is how many rotated files are kept; 0 keeps every timed
	// backup and disables size rotation, as in Python.
	BackupCount int
	// When and Interval are the timed rotation (TimedRotatingFileHandler):
	// S, M, H, D, MIDNIGHT or W0..W6 (Monday is W0); "" for none.
	When     string
	Interval int
}

// LogsJSON is what the gateway takes from logs.json. Upstream has one logger
// per area (service, connector, converter, storage, ...), each with its own
// file; we have one log, so the "service" logger's level and file are used
// (the root logger's when there is no "service" logger).
type LogsJSON struct {
	File  string   // path of logs.json
	Level string   // zerolog level name; "" when not configured
	Out   *LogFile // nil: no file logging
}

// LoadLogs reads logs.json from dir. A missing file is not a problem: it
// returns nil and no problems. Problems are warnings only: upstream falls
// back to its default logging on a bad logs.json, so a bad one must not
// stop the gateway.
func LoadLogs(dir string, getenv func(string) string) (*LogsJSON, []spec.Problem) {
	path := filepath.Join(dir, LogsFileName)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	ps := &spec.Problems{}
	defer func() {
		for i := range ps.List {
			ps.List[i].Severity = spec.Warning
		}
	}()
	if err != nil {
		ps.Errorf(path, "", "cannot read: %v", unwrapPath(err))
		return nil, ps.List
	}
	return parseLogsFile(ps, path, raw, getenv), ps.List
}

// ParseLogs is LoadLogs for the contents of a logs.json at path.
func ParseLogs(path string, raw []byte, getenv func(string) string) (*LogsJSON, []spec.Problem) {
	ps := &spec.Problems{}
	l := parseLogsFile(ps, path, raw, getenv)
	for i := range ps.List {
		ps.List[i].Severity = spec.Warning
	}
	return l, ps.List
}

func parseLogsFile(ps *spec.Problems, path string, raw []byte, getenv func(string) string) *LogsJSON {
	root := spec.Parse(ps, path, raw)
	if root == nil {
		return nil
	}
	l := parseLogsJSON(root, getenv)
	l.File = path
	return l
}

func parseLogsJSON(root *spec.Obj, getenv func(string) string) *LogsJSON {
	l := &LogsJSON{}
	// Python's dictConfig keys we do not need: formats are ours.
	root.Known("version", "disable_existing_loggers", "formatters", "filters", "incremental")
	handlers := root.Obj("handlers")
	loggers := root.Obj("loggers")
	var logger *spec.Obj
	if loggers != nil {
		logger = loggers.Obj("service")
		loggers.Known(keysOf(loggers)...)
	}
	rootLogger := root.Obj("root")
	var level string
	var names []string
	for _, lg := range []*spec.Obj{logger, rootLogger} {
		if lg == nil {
			continue
		}
		lv := pythonLevel(lg, "level")
		if level == "" {
			// NOTSET defers to the parent logger, as in Python.
			level = lv
		}
		names = append(names, stringList(lg, "handlers")...)
		lg.Known("propagate", "filters")
		lg.Done()
	}
	l.Level = level
	if handlers == nil {
		root.Done()
		return l
	}
	for _, name := range names {
		h := handlers.Obj(name)
		if h == nil {
			if !handlers.Has(name) {
				handlers.Warnf("", "handler %q, used by a logger, is not defined", name)
			}
			continue
		}
		if f := parseFileHandler(h, name, getenv); f != nil {
			l.Out = f
			break
		}
	}
	handlers.Known(keysOf(handlers)...)
	root.Done()
	return l
}

// parseFileHandler returns nil when h is not a file handler (a console).
func parseFileHandler(h *spec.Obj, name string, getenv func(string) string) *LogFile {
	class := h.Str("class", "")
	h.Known("formatter", "encoding", "delay", "utc", "atTime", "errors", "mode", "stream", "filters")
	if !strings.HasSuffix(class, "FileHandler") {
		return nil
	}
	f := &LogFile{Handler: name, Level: pythonLevel(h, "level")}
	fn := h.RequiredStr("filename")
	if fn == "" {
		return nil
	}
	if dir := strings.TrimSpace(getenv(EnvLogsPath)); dir != "" {
		fn = filepath.Join(dir, filepath.Base(fn))
	}
	// Relative paths are relative to the working directory, as upstream
	// opens them ("./logs/service.log").
	if abs, err := filepath.Abs(fn); err == nil {
		fn = abs
	}
	f.Path = fn
	base := class[strings.LastIndex(class, ".")+1:]
	switch base {
	case "RotatingFileHandler":
		f.MaxBytes = h.IntRange("maxBytes", 0, 0, 1<<50)
		f.BackupCount = int(h.IntRange("backupCount", 0, 0, 1<<20))
	case "TimedRotatingFileHandler":
		// Upstream's own TimedRotatingFileHandler also rotates on maxBytes.
		f.MaxBytes = h.IntRange("maxBytes", 0, 0, 1<<50)
		f.BackupCount = int(h.IntRange("backupCount", 0, 0, 1<<20))
		f.When = strings.ToUpper(h.Enum("when", "h", "s", "m", "h", "d", "midnight", "w0", "w1", "w2", "w3", "w4", "w5", "w6"))
		f.Interval = int(h.IntRange("interval", 1, 1, 1<<20))
	case "FileHandler", "WatchedFileHandler":
	default:
		h.Warnf("class", "unknown file handler class %q; writing the file without rotation", class)
	}
	h.Known("maxBytes", "backupCount", "when", "interval")
	h.Done()
	return f
}

// pythonLevels maps Python's level names (and TB's TRACE) to zerolog's.
var pythonLevels = map[string]string{
	"NOTSET": "", "TRACE": "trace", "DEBUG": "debug", "INFO": "info",
	"WARNING": "warn", "WARN": "warn", "ERROR": "error", "CRITICAL": "fatal", "FATAL": "fatal",
}

// pythonLevel reads a level given by name or number. A number between two
// levels passes what Python would: the next level up.
func pythonLevel(o *spec.Obj, key string) string {
	v, ok := o.Any(key)
	if !ok {
		return ""
	}
	s := ""
	switch t := v.(type) {
	case string:
		s = strings.ToUpper(strings.TrimSpace(t))
	default:
		s = strings.TrimSpace(strings.Trim(strings.TrimSpace(toText(t)), `"`))
	}
	if lv, ok := pythonLevels[s]; ok {
		return lv
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		o.Errorf(key, "unknown level %q (want NOTSET, TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)", s)
		return ""
	}
	switch {
	case n <= 0:
		return ""
	case n <= 5:
		return "trace"
	case n <= 10:
		return "debug"
	case n <= 20:
		return "info"
	case n <= 30:
		return "warn"
	case n <= 40:
		return "error"
	}
	return "fatal"
}

func toText(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case interface{ String() string }:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	}
	return ""
}

// stringList reads a list of strings, reporting other items.
func stringList(o *spec.Obj, key string) []string {
	v, ok := o.Any(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.Errorf(key, "expected a list of handler names")
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, it := range arr {
		s, isStr := it.(string)
		if !isStr {
			o.Errorf(key, "item %d: expected a handler name", i)
			continue
		}
		out = append(out, s)
	}
	return out
}

func keysOf(o *spec.Obj) []string {
	out := make([]string, 0, len(o.Raw()))
	for k := range o.Raw() {
		out = append(out, k)
	}
	return out
}
