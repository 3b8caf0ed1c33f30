package main

import (
	"time"

	"github.com/rs/zerolog"
)

// startupSettle is how long after "gateway started" the start-up pages are
// released: long enough for the first polls, connects and the automation
// start to have run the code they need once.
const startupSettle = 10 * time.Second

// releaseStartupPagesLater hands the binary's resident read-only pages back
// to the kernel once start-up has settled. Start-up (every package's init,
// config parsing, each connector's set-up) touches most of the binary, and
// the kernel maps code in 64 KB runs around each fault, so without this about
// two thirds of a steady gateway's RSS is code it ran once. The pages are
// clean file pages: what the gateway runs afterwards faults back from the
// page cache or the disk. The returned func cancels a release not done yet.
func releaseStartupPagesLater(keep bool, log zerolog.Logger) (cancel func()) {
	if keep {
		return func() {}
	}
	t := time.AfterFunc(startupSettle, func() {
		released, err := releaseCodePages()
		if err != nil {
			log.Debug().Err(err).Msg("start-up pages kept")
			return
		}
		log.Info().Int("mappedMB", released>>20).Msg("start-up pages released to the kernel (resources.keepStartupPages keeps them)")
	})
	return func() { t.Stop() }
}
