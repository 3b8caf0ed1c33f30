package persistence

import (
	"encoding/binary"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// The layout before segments: one key per record, legacyPrefix + big-endian seq, whose value
// is an 8-byte big-endian Time followed by the event bytes. m/cursor and m/last meant the same.
var legacyPrefix = []byte("q/")

// layoutKey records that the journal uses segments, so that opening it does not look for
// per-record keys again (their tombstones can outlive the conversion for a long time).
var layoutKey = []byte("m/layout")

const (
	layoutSegments = 2
	// layoutPacked: segments may be compressed (segPacked). A layout-2 journal is one already,
	// since its plain segments read the same; opening it only writes the new number, so that
	// a version that cannot read packed segments refuses the journal instead of dropping them
	// as damaged.
	layoutPacked = 3
	legacyKeyLen = 2 + 8

	// Conversion transactions are kept well below badger's limits (~630 KB and ~6 500 entries
	// with a 4 MB memtable) so that one segment and the deletion of its per-record keys always
	// commit together: a crash then never leaves a record both in a segment and in its old key.
	migrateTxnBytes = 256 << 10
	migrateTxnOps   = 2048
)

func decodeLegacyValue(seq uint64, v []byte) (int64, []byte, error) {
	if len(v) < timeLen {
		return 0, nil, fmt.Errorf("persistence: legacy record %d corrupt: value of %d bytes", seq, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[timeLen:], nil
}

// migrate converts the per-record keys of a journal written by the previous version into
// segments, preserving seqs and times: a run of consecutive seqs with the same Time (one old
// Append) becomes one or more segments. Records at or below the cursor, which the old version
// could not leave behind, are deleted without being converted. It runs before the ledger is
// rebuilt; the conversion commits in several transactions, each holding whole segments, so it
// resumes where it stopped if the process dies part-way.
func (b *Badger) migrate() error {
	var layout, cursor uint64
	if err := b.db.View(func(txn *badger.Txn) error {
		var err error
		if layout, err = getUint64(txn, layoutKey); err != nil {
			return err
		}
		cursor, err = getUint64(txn, cursorKey)
		return err
	}); err != nil {
		return err
	}
	switch layout {
	case layoutPacked:
		return nil
	case layoutSegments:
		err := b.update(func(txn *badger.Txn) error {
			if b.opts.beforeLayout != nil {
				if err := b.opts.beforeLayout(); err != nil {
					return err
				}
			}
			return txn.Set(layoutKey, binary.BigEndian.AppendUint64(nil, layoutPacked))
		})
		if err != nil {
			// A full disk on the first start after an upgrade must not keep the gateway down:
			// the journal stays layout 2, uncompressed, until a later start can mark it.
			b.plainOnly = true
			b.log.Warn().Err(err).Str("dir", b.dir).Msg("journal kept at layout 2: segments stay uncompressed until the next start")
		}
		return nil
	case 0:
	default:
		return fmt.Errorf("persistence: journal layout %d unknown (written by a newer version?)", layout)
	}

	rtxn := b.db.NewTransaction(false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{Prefix: legacyPrefix})
	defer it.Close()

	wtxn := b.db.NewTransaction(true)
	defer func() { wtxn.Discard() }()
	ops, size := 0, 0
	// reserve makes room in the write transaction for ops entries of n bytes, committing the
	// previous ones first if needed; a group that does not fit alone still goes in alone.
	reserve := func(o, n int) error {
		if ops > 0 && (ops+o > migrateTxnOps || size+n > migrateTxnBytes) {
			if err := wtxn.Commit(); err != nil {
				return err
			}
			wtxn = b.db.NewTransaction(true)
			ops, size = 0, 0
		}
		ops += o
		size += n
		return nil
	}

	var (
		runTS            int64
		runData          [][]byte
		runFirst         uint64
		runBytes         int
		converted, segs  int
		stale            int
		legacyKeysTxnLen = legacyKeyLen + 10 // key + badger's version suffix
	)
	flush := func() error {
		if len(runData) == 0 {
			return nil
		}
		last := runFirst + uint64(len(runData)) - 1
		v, _ := packSegValue(nil, appendSegValue(make([]byte, 0, segValueLen(len(runData), runBytes)), runTS, runData))
		if err := reserve(1+len(runData), segKeyLen+len(v)+len(runData)*legacyKeysTxnLen); err != nil {
			return err
		}
		// One transaction: the segment and the removal of the keys it replaces.
		if err := wtxn.Set(segKey(last), v); err != nil {
			return err
		}
		keys := make([]byte, 0, legacyKeyLen*len(runData))
		for seq := runFirst; seq <= last; seq++ {
			off := len(keys)
			keys = binary.BigEndian.AppendUint64(append(keys, legacyPrefix...), seq)
			if err := wtxn.Delete(keys[off:len(keys):len(keys)]); err != nil {
				return err
			}
		}
		converted += len(runData)
		segs++
		runData, runBytes = nil, 0
		return nil
	}

	for it.Rewind(); it.ValidForPrefix(legacyPrefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != legacyKeyLen {
			return fmt.Errorf("persistence: legacy record key %q corrupt", k)
		}
		seq := binary.BigEndian.Uint64(k[len(legacyPrefix):])
		if seq <= cursor {
			if err := reserve(1, legacyKeysTxnLen); err != nil {
				return err
			}
			if err := wtxn.Delete(item.KeyCopy(nil)); err != nil {
				return err
			}
			stale++
			continue
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("persistence: legacy record %d: %w", seq, err)
		}
		ts, d, err := decodeLegacyValue(seq, v)
		if err != nil {
			return err
		}
		n := encodedLen(d)
		if len(runData) > 0 && (seq != runFirst+uint64(len(runData)) || ts != runTS ||
			len(runData) >= segMaxRecords || runBytes+n > segMaxBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(runData) == 0 {
			runFirst, runTS = seq, ts
		}
		runData = append(runData, d)
		runBytes += n
	}
	if err := flush(); err != nil {
		return err
	}
	if err := reserve(1, 32); err != nil {
		return err
	}
	if err := wtxn.Set(layoutKey, binary.BigEndian.AppendUint64(nil, layoutPacked)); err != nil {
		return err
	}
	if err := wtxn.Commit(); err != nil {
		return err
	}
	if converted > 0 || stale > 0 {
		b.log.Info().Int("records", converted).Int("segments", segs).Int("stale_deleted", stale).
			Msg("journal converted to the segment layout")
	}
	return nil
}
