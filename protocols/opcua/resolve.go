package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// ToUA converts a parsed node id to gopcua's.
func ToUA(n NodeID) *ua.NodeID {
	switch n.Kind {
	case StringID:
		return ua.NewStringNodeID(n.Namespace, n.Str)
	case GUID:
		return ua.NewGUIDNodeID(n.Namespace, NodeID{Kind: GUID, GUID: n.GUID}.String()[2:])
	case Opaque:
		return ua.NewByteStringNodeID(n.Namespace, n.Opaque)
	}
	return ua.NewNumericNodeID(n.Namespace, n.Numeric)
}

var rootID = ua.NewNumericNodeID(0, id.RootFolder)

// ref is one browsed child.
type ref struct {
	id    *ua.NodeID
	ns    uint16
	name  string
	class ua.NodeClass
}

// browser resolves paths for one scan. Every node is browsed at most once
// per scan (children are cached), in batches, and all paths advance one
// level together, so a scan costs depth × ⌈nodes/batch⌉ round trips
// however many devices and keys share the tree.
type browser struct {
	c     *opcua.Client
	batch int
	// shrink, when set, is told that a batch failed in a way that suggests
	// the response was too large (the connection dropped mid-answer, or
	// BadResponseTooLarge): some servers (gopcua's among them) cannot send
	// answers beyond one 64 KiB chunk, so the connector browses in smaller
	// batches from then on.
	shrink   func(failed int)
	children map[string][]ref
	requests int // Browse and BrowseNext calls, for tests and logs
	// patternErr, when set, hears of a path pattern that timed out on a
	// browse name; that name is taken as not matching.
	patternErr func(error)
}

func newBrowser(c *opcua.Client, batch int) *browser {
	if batch <= 0 || batch > 1000 {
		batch = 100
	}
	return &browser{c: c, batch: batch, children: map[string][]ref{}}
}

// expand browses the hierarchical children of every node not cached yet.
func (b *browser) expand(ctx context.Context, nodes []*ua.NodeID) error {
	var todo []*ua.NodeID
	seen := map[string]bool{}
	for _, n := range nodes {
		k := n.String()
		if _, ok := b.children[k]; ok || seen[k] {
			continue
		}
		seen[k] = true
		todo = append(todo, n)
	}
	for start := 0; start < len(todo); start += b.batch {
		part := todo[start:min(start+b.batch, len(todo))]
		req := &ua.BrowseRequest{
			View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
			RequestedMaxReferencesPerNode: 1000,
		}
		for _, n := range part {
			req.NodesToBrowse = append(req.NodesToBrowse, &ua.BrowseDescription{
				NodeID:          n,
				BrowseDirection: ua.BrowseDirectionForward,
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
				IncludeSubtypes: true,
				NodeClassMask:   uint32(ua.NodeClassObject | ua.NodeClassVariable | ua.NodeClassMethod),
				ResultMask:      uint32(ua.BrowseResultMaskBrowseName | ua.BrowseResultMaskNodeClass),
			})
		}
		b.requests++
		res, err := b.c.Browse(ctx, req)
		if err == nil && res.ResponseHeader != nil && isBad(res.ResponseHeader.ServiceResult) {
			err = res.ResponseHeader.ServiceResult
		}
		if err != nil {
			if b.shrink != nil && tooLarge(err) {
				b.shrink(len(part))
			}
			return fmt.Errorf("browse %d nodes from %s: %w", len(part), part[0], err)
		}
		if len(res.Results) != len(part) {
			return fmt.Errorf("browse %d nodes from %s: server answered %d results", len(part), part[0], len(res.Results))
		}
		var cps [][]byte
		var cpNodes []string
		for i, r := range res.Results {
			k := part[i].String()
			kids := b.children[k]
			if r == nil {
				b.children[k] = kids
				continue
			}
			if isBad(r.StatusCode) {
				// An unknown node has no children; the path reports it.
				b.children[k] = kids
				continue
			}
			b.children[k] = appendRefs(kids, r.References)
			if len(r.ContinuationPoint) > 0 {
				cps = append(cps, r.ContinuationPoint)
				cpNodes = append(cpNodes, k)
			}
		}
		for len(cps) > 0 {
			b.requests++
			nr, err := b.c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: cps})
			if err != nil {
				return fmt.Errorf("browse next for %d nodes from %s: %w", len(cps), cpNodes[0], err)
			}
			var nextCPs [][]byte
			var nextNodes []string
			for i, r := range nr.Results {
				if i >= len(cpNodes) || r == nil || isBad(r.StatusCode) {
					continue
				}
				b.children[cpNodes[i]] = appendRefs(b.children[cpNodes[i]], r.References)
				if len(r.ContinuationPoint) > 0 {
					nextCPs = append(nextCPs, r.ContinuationPoint)
					nextNodes = append(nextNodes, cpNodes[i])
				}
			}
			cps, cpNodes = nextCPs, nextNodes
		}
	}
	return nil
}

func tooLarge(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ua.StatusBadResponseTooLarge) ||
		errors.Is(err, ua.StatusBadEncodingLimitsExceeded) || errors.Is(err, ua.StatusBadTCPMessageTooLarge)
}

func appendRefs(dst []ref, refs []*ua.ReferenceDescription) []ref {
	for _, r := range refs {
		if r == nil || r.NodeID == nil || r.NodeID.NodeID == nil || r.BrowseName == nil {
			continue
		}
		dst = append(dst, ref{id: r.NodeID.NodeID, ns: r.BrowseName.NamespaceIndex, name: r.BrowseName.Name, class: r.NodeClass})
	}
	return dst
}

// query is one path to follow from start nodes.
type query struct {
	segs  []Segment
	cur   []*ua.NodeID
	multi bool // keep every match (device patterns); otherwise the first
}

func newQuery(e Expr, device *ua.NodeID, multi bool) *query {
	if e.Kind == ExprNodeID {
		return &query{cur: []*ua.NodeID{ToUA(e.Node)}}
	}
	if e.Path.Absolute {
		return &query{segs: e.Path.Segments[1:], cur: []*ua.NodeID{rootID}, multi: multi}
	}
	return &query{segs: e.Path.Segments, cur: []*ua.NodeID{device}, multi: multi}
}

// result is the first match, or nil.
func (q *query) result() *ua.NodeID {
	if len(q.cur) == 0 {
		return nil
	}
	return q.cur[0]
}

// resolve advances every query one level at a time.
func (b *browser) resolve(ctx context.Context, qs []*query) error {
	for level := 0; ; level++ {
		var need []*ua.NodeID
		for _, q := range qs {
			if level < len(q.segs) {
				need = append(need, q.cur...)
			}
		}
		if len(need) == 0 {
			return nil
		}
		if err := b.expand(ctx, need); err != nil {
			return err
		}
		for _, q := range qs {
			if level >= len(q.segs) {
				continue
			}
			seg := q.segs[level]
			var next []*ua.NodeID
		nodes:
			for _, n := range q.cur {
				for _, r := range b.children[n.String()] {
					ok, err := seg.Match(r.ns, r.name)
					if err != nil && b.patternErr != nil {
						b.patternErr(fmt.Errorf("browse name %q: %w", r.name, err))
					}
					if ok {
						next = append(next, r.id)
						if !q.multi {
							break nodes
						}
					}
				}
			}
			q.cur = next
		}
	}
}

// methodNode finds a Method child of the device node by browse name.
func (b *browser) methodNode(ctx context.Context, device *ua.NodeID, name string) (*ua.NodeID, error) {
	if err := b.expand(ctx, []*ua.NodeID{device}); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range b.children[device.String()] {
		if r.class == ua.NodeClassMethod {
			if r.name == name {
				return r.id, nil
			}
			names = append(names, r.name)
		}
	}
	return nil, fmt.Errorf("%w %q: device node %s has no such method (methods: %s)", protocols.ErrUnknownMethod, name, device, strings.Join(names, ", "))
}
