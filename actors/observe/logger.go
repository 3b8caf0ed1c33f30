package observe

import (
	"io"

	"github.com/rs/zerolog"
)

// NewLogger builds the process logger. Lines at level and above go to out.
// With a RemoteLog, lines at its remote level go there too, even when that
// level is below the local one (RemoteLoggingLevel DEBUG on a box logging
// INFO locally): the logger passes everything either side wants, through a
// sampler that reads the remote level atomically, and out is filtered back
// to level. Below both levels an event is not even built, as usual.
func NewLogger(out io.Writer, level zerolog.Level, r *RemoteLog) zerolog.Logger {
	if r == nil {
		return zerolog.New(out).Level(level).With().Timestamp().Logger()
	}
	w := zerolog.MultiLevelWriter(&levelFilter{w: out, min: level}, r)
	return zerolog.New(w).Level(zerolog.TraceLevel).Sample(&gate{local: level, r: r}).With().Timestamp().Logger()
}

// gate is a zerolog.Sampler used as a dynamic level: child loggers inherit
// it, and zerolog consults it before building an event.
type gate struct {
	local zerolog.Level
	r     *RemoteLog
}

func (g *gate) Sample(lvl zerolog.Level) bool {
	return lvl >= g.local || lvl >= zerolog.Level(g.r.min.Load())
}

// levelFilter passes lines at min and above to w.
type levelFilter struct {
	w   io.Writer
	min zerolog.Level
}

func (f *levelFilter) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f *levelFilter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < f.min {
		return len(p), nil
	}
	if lw, ok := f.w.(zerolog.LevelWriter); ok {
		return lw.WriteLevel(l, p)
	}
	return f.w.Write(p)
}
