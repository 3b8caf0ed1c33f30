package automation

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// ReloadFile loads path and, when it is valid, replaces the running
// forwards and tasks with it. A file with errors is refused: the error
// names the file, line and path of each problem, and the running
// automation stays as it was.
func (e *Engine) ReloadFile(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("automation %s is gone; the running automation stays until the next start", path)
	}
	if err != nil {
		return fmt.Errorf("automation %s not reloaded: %w", path, err)
	}
	e.noteFile(raw)
	cfg, ps := Parse(path, raw)
	if err := ps.Err(); err != nil {
		return fmt.Errorf("automation %s not reloaded; the running automation stays:\n%w", path, err)
	}
	for _, p := range ps.NotErrors() {
		e.log.Warn().Msg(p.String())
	}
	return e.Reload(cfg)
}

// noteFile records the automation file's content as seen, so the watch
// does not load it again.
func (e *Engine) noteFile(raw []byte) {
	sum := sha256.Sum256(raw)
	e.fileMu.Lock()
	e.fileSum = sum
	e.fileMu.Unlock()
}

// WatchFile reloads path whenever its content changes, checked every
// every (a poll rather than inotify: no new dependency, and it works on
// the network and overlay file systems gateways run on). The content is
// compared, not the mtime, so a rewrite within one mtime tick is seen and
// a touch alone reloads nothing; a change is applied once it has stayed
// the same for one poll. done learns of each reload's outcome. The
// content running now counts as seen, from Start or ReloadFile.
func (e *Engine) WatchFile(path string, every time.Duration, done func(error)) (stop func()) {
	if raw, err := os.ReadFile(path); err == nil {
		e.fileMu.Lock()
		if e.fileSum == ([32]byte{}) {
			e.fileSum = sha256.Sum256(raw)
		}
		e.fileMu.Unlock()
	}
	return PollFile(path, every, func(raw []byte, sum [32]byte) bool {
		e.fileMu.Lock()
		same := sum == e.fileSum
		e.fileMu.Unlock()
		if !same {
			done(e.ReloadFile(path))
		}
		return true
	})
}

// PollFile reads path every every and calls changed with content that has
// stayed the same for two polls in a row (an editor or copy writing in
// place is not caught halfway); the caller skips content it has seen. A
// missing or unreadable file is skipped (an editor's rename).
// Polling ends when changed returns false or stop is called.
func PollFile(path string, every time.Duration, changed func(raw []byte, sum [32]byte) bool) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		var pending [32]byte
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			sum := sha256.Sum256(raw)
			if sum != pending {
				pending = sum
				continue
			}
			if !changed(raw, sum) {
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}
