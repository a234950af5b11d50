// Package browser runs headless Chromium (Debian "chromium") for end-to-end
// tests, driven by chromedp. The browser runs inside a lab network namespace,
// trusts only the CA certificates a test gives it (through a throwaway NSS
// database, never by ignoring certificate errors), and records every request
// a tab makes from the browser's own network events, so a test can assert
// where a page went and that nothing failed. It is imported by tests only.
package browser
