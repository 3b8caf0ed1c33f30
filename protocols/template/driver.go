package template

import (
	"context"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("template", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("template", Sections())
}

// Connector is a configured template connector: one device per devices[].
type Connector struct {
	name    string
	cfg     *Config
	devices []protocols.Device
}

// NewConnector is New with the concrete type, for tests.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "template", func(o *spec.Obj) (*Config, string) {
		c := Parse(o, cfg.Report)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, cfg: parsed}
	for _, d := range parsed.Devices {
		c.devices = append(c.devices, &device{cfg: d})
	}
	return c, nil
}

// Name is the connector's name.
func (c *Connector) Name() string { return c.name }

// Devices are polled by the gateway's device actors.
func (c *Connector) Devices() []protocols.Device { return c.devices }

// Close releases nothing: the devices hold what they open.
func (c *Connector) Close() error { return nil }

// device is one polled device. The runtime calls Poll every PollPeriod and
// the downlink methods (commands.go) in between, never concurrently.
type device struct {
	cfg  *DeviceConfig
	fake *fakeDevice
}

func (d *device) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: d.cfg.Name, Type: d.cfg.Type, PollPeriod: d.cfg.PollPeriod, Report: d.cfg.Report}
}

// open (re)connects lazily, so a device that is down at start-up is
// retried by the poll loop instead of failing the connector.
func (d *device) open() (*fakeDevice, error) {
	if d.fake == nil {
		f, err := openFake(d.cfg.Address)
		if err != nil {
			return nil, err
		}
		d.fake = f
	}
	return d.fake, nil
}

// Poll reads the device once within its timeout and converts the result.
func (d *device) Poll(ctx context.Context) (protocols.Reading, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	f, err := d.open()
	if err != nil {
		return protocols.Reading{}, err
	}
	if err := ctx.Err(); err != nil {
		return protocols.Reading{}, err
	}
	return Convert(d.cfg, f.read())
}

// PollReadingOwned says Poll's Reading is the caller's: Convert makes its
// slices per call. Declare it only if that holds (protocols.OwnedReadingPoller);
// the device actor then filters the reading in place instead of copying it.
func (d *device) PollReadingOwned() {}

func (d *device) Close() error {
	d.fake = nil
	return nil
}
