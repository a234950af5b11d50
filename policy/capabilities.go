package policy

// Capabilities is what the running appliance can enforce. The engine can
// express more than any one appliance may be set up for (a malware policy
// without a scanner, step-up without an identity provider that does it):
// CompileFor and CheckFor refuse such policies at load, with the position
// and what to configure, instead of accepting them and never enforcing.
type Capabilities struct {
	// MalwareScan: a malware scanner (clamd or ICAP) is configured.
	MalwareScan bool
	// StepUp: an identity provider that can re-authenticate with a stronger
	// requirement is configured.
	StepUp bool
	// Protect: the protect transforms (PDF and OOXML labels) are available.
	Protect bool
	// ProtectEncrypt: protected files can also be encrypted (a password for
	// protected files is configured).
	ProtectEncrypt bool
	// ControlScript: print, cut/copy and paste can be controlled (the
	// control script is injected into pages).
	ControlScript bool
}

// enforceable adds an error for every part of p the appliance cannot
// enforce. With no capabilities given (the engine alone) everything is.
func (c *compiler) enforceable(p *SessionPolicy) {
	caps := c.caps
	if caps == nil || p.Disabled {
		return
	}
	if p.Malware && !caps.MalwareScan {
		c.errs.add(p.At, ErrUnenforceable, "configure session.malware.clamd or session.malware.icap in the appliance configuration",
			"session policy %q scans for malware, but no malware scanner is configured", p.ID)
	}
	if p.Action == ActionStepUp && !caps.StepUp {
		c.errs.add(p.At, ErrUnenforceable, "use action: block until an identity provider with step-up is configured",
			"session policy %q requires step-up authentication, which this appliance cannot perform", p.ID)
	}
	if p.Action == ActionProtect && !caps.Protect {
		c.errs.add(p.At, ErrUnenforceable, "use action: block, or enable protection in the appliance",
			"session policy %q protects files, which this appliance cannot do", p.ID)
	}
	if p.Action == ActionProtect && p.Protect.Encrypt && caps.Protect && !caps.ProtectEncrypt {
		c.errs.add(p.Protect.At, ErrUnenforceable, "set session.protect.password_file in the appliance configuration, or drop encrypt",
			"session policy %q encrypts files, but no password for protected files is configured", p.ID)
	}
	if p.Control == ControlBlockActivities && !caps.ControlScript {
		for i, a := range p.Activities.AnyOf {
			switch a {
			case "print", "cut_copy", "paste":
				c.errs.add(p.Activities.posOf(false, i), ErrUnenforceable, "enable the control script (session.control_script) or remove the activity",
					"session policy %q controls %s, which needs the control script in pages", p.ID, a)
			}
		}
	}
}
