package appliance

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Service manager notifications (sd_notify(3)) for Type=notify units: the
// daemon says READY=1 once its listeners are bound and the datapath is
// attached, STOPPING=1 when it begins to shut down, and WATCHDOG=1 at half of
// $WATCHDOG_USEC while it runs. Outside systemd ($NOTIFY_SOCKET unset) all of
// it is a no-op. The protocol is one datagram per message on a unix socket,
// so it is written here rather than pulled in as a dependency.

// notifyGetenv reads the notification variables; tests run the daemon with
// the process environment, set with t.Setenv.
var notifyGetenv = os.Getenv

// sdNotify sends state to $NOTIFY_SOCKET. It reports false when there is no
// socket to send to.
func sdNotify(getenv func(string) string, state string) (bool, error) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	// A leading '@' names a socket in the abstract namespace; net does the
	// translation.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return true, fmt.Errorf("notify socket: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return true, fmt.Errorf("notify socket: %w", err)
	}
	return true, nil
}

// watchdogInterval is half the watchdog timeout systemd set for this
// process (0: no watchdog).
func watchdogInterval(getenv func(string) string) time.Duration {
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0 // meant for another process (e.g. a wrapper that exec'd us)
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// notifyReady tells the service manager the appliance is serving and starts
// the watchdog pings. The returned function says STOPPING=1 and stops them;
// call it when shutdown begins.
func (a *Appliance) notifyReady() (stopping func()) {
	getenv := notifyGetenv
	send := func(state string) {
		if _, err := sdNotify(getenv, state); err != nil {
			a.log.Warn("service manager notification", "state", state, "err", err)
		}
	}
	send("READY=1\nSTATUS=serving, management on " + a.ManagementAddr())
	done := make(chan struct{})
	var wg sync.WaitGroup
	if every := watchdogInterval(getenv); every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					send("WATCHDOG=1")
				}
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			send("STOPPING=1")
		})
	}
}
