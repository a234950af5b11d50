// Package revocationlab is a throwaway PKI with live revocation services for
// tests: root and intermediate CAs whose certificates name OCSP responders
// and CRL distribution points on a loopback HTTP server the test starts, and
// switches to make those services misbehave (forged or stale answers, bad
// CRL signatures, oversized bodies, outages, hangs). Responders count the
// requests they answer, so a test can prove a cache or a singleflight held.
//
// It is test-only: Start listens on 127.0.0.1 only, StartOn on a listener
// the test made (inside a lab network namespace).
package revocationlab
