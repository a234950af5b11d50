// Package appliance is the one package that wires the others together: it
// reads and validates the configuration, owns the lifecycle of the proxy
// listeners and the kernel datapath, and serves the management endpoints.
package appliance
