package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// runCommand executes a routed command inside the device actor.
func (d *deviceActor) runCommand(ctx actor.Context, msg any) {
	cmd, ok := d.cmd, d.cmd != nil
	switch m := msg.(type) {
	case *routeRPC:
		if time.Now().After(m.deadline) {
			// The caller already answered with a timeout; a late write
			// would surprise the operator more than a missing one.
			d.logger().Warn().Str("method", m.req.Method).Msg("rpc expired before the device was free; not executed")
			return
		}
		if !ok {
			ctx.Respond(&rpcResult{err: fmt.Errorf("device %q does not accept rpc", d.info.Name)})
			return
		}
		c, cancel := context.WithDeadline(context.Background(), m.deadline)
		data, err := cmd.RPC(c, m.req)
		cancel()
		if err != nil {
			d.logger().Warn().Err(err).Str("method", m.req.Method).Int64("id", m.req.ID).Msg("rpc failed")
		}
		ctx.Respond(&rpcResult{data: data, err: err})
	case *routeAttributes:
		// The platform's updates expect no answer; a local write (automation)
		// asks and waits for one.
		reply := func(ignored []string, err error) {
			if ctx.Sender() != nil {
				ctx.Respond(&attributesResult{ignored: ignored, err: err})
			}
		}
		if !ok {
			d.logger().Warn().Msg("attribute update for a device that takes no writes; ignored")
			reply(nil, fmt.Errorf("device %q takes no writes", d.info.Name))
			return
		}
		c, cancel := context.WithTimeout(context.Background(), DefaultRPCTimeout)
		ignored, err := cmd.UpdateAttributes(c, m.upd.Values)
		cancel()
		if err != nil {
			d.logger().Warn().Err(err).Msg("attribute update failed")
		}
		if len(ignored) > 0 {
			d.logger().Debug().Strs("keys", ignored).Msg("attribute keys not declared in attributeUpdates; ignored")
		}
		reply(ignored, err)
	}
}
