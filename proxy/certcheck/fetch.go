package certcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// fetch GETs (body == nil) or POSTs one URL and returns at most limit bytes
// of a 200 answer; anything larger is errTooLarge. Only http and https URLs
// taken from certificates that already chain to a trusted root reach here.
func (c *Checker) fetch(ctx context.Context, rawURL, contentType string, body []byte, limit int64) ([]byte, error) {
	if !fetchableURL(rawURL) {
		return nil, errURL
	}
	c.n.fetches.Add(1)
	b, err := c.fetchOnce(ctx, rawURL, contentType, body, limit)
	if err != nil {
		c.n.fetchErrors.Add(1)
	}
	return b, err
}

func (c *Checker) fetchOnce(ctx context.Context, rawURL, contentType string, body []byte, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w %d", errHTTPStatus, resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", errTooLarge, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return b, nil
}

func fetchableURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
