package appliance

import (
	"fmt"
	"net"

	"github.com/portcullis-gw/portcullis/agent"
)

// startDatapath attaches the kernel datapath and hands it the transparent
// listeners. New calls it last, once every listener is bound, so that no
// later start-up step can fail with the datapath attached. If a step here
// fails after the agent started, the start is undone: a datapath this start
// created is detached, one it took over from a previous run is left pinned
// (deciding in its fail mode, as while the daemon was down).
func (a *Appliance) startDatapath() (err error) {
	dp, err := agent.Start(agentConfig(a.cfg.Datapath))
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	at := dp.Attachment()
	defer func() {
		if err == nil {
			return
		}
		undo := dp.Detach
		if at.TookOver {
			undo = dp.Close
		}
		if uerr := undo(); uerr != nil {
			a.log.Error("datapath start undo", "err", uerr)
		}
	}()
	for _, ln := range a.transparent {
		tcp := ln.(*net.TCPListener)
		ipv6 := tcp.Addr().(*net.TCPAddr).IP.To4() == nil
		if err := withFD(tcp, func(fd uintptr) error { return dp.SetListener(fd, ipv6) }); err != nil {
			return fmt.Errorf("datapath listener: %w", err)
		}
	}
	if err := a.registry.Register(dp.Collector()); err != nil {
		return fmt.Errorf("datapath metrics: %w", err)
	}
	if at.MountedBPFFS != "" {
		a.log.Warn("no bpffs was mounted, so the datapath mounted one; in a private mount namespace (ip netns exec) its pins go when the daemon exits",
			"at", at.MountedBPFFS)
	}
	a.log.Info("datapath attached", "steering", at.Steering, "mode", at.Mode, "interface", at.Interface, "took_over", at.TookOver,
		"ipv6_routing", at.IPv6, "pin_dir", a.cfg.Datapath.PinDir)
	a.datapath = dp
	return nil
}
